using Kiln.Build.Definition;
using Kiln.Oci;

namespace Kiln.Build.Execution;

/// <summary>Applies config-only steps and the <c>config:</c> block to an image config (returns new values).</summary>
internal static class ConfigMerge
{
    public static ContainerConfig WithEnv(ContainerConfig c, IEnumerable<KeyValuePair<string, string>> vars)
    {
        var env = new List<string>(c.Env ?? []);
        foreach (var (k, v) in vars)
        {
            env.RemoveAll(e => e.StartsWith(k + "=", StringComparison.Ordinal) || e == k);
            env.Add($"{k}={v}");
        }
        return c with { Env = env };
    }

    public static ContainerConfig Apply(ContainerConfig c, ConfigDefinition d)
    {
        if (d.Env is { } env)
        {
            c = WithEnv(c, env);
        }
        if (d.Entrypoint is { } ep)
        {
            // As in Dockerfiles: a new entrypoint drops the inherited cmd unless cmd is given too.
            c = c with { Entrypoint = ep, Cmd = d.Cmd };
        }
        else if (d.Cmd is { } cmd)
        {
            c = c with { Cmd = cmd };
        }
        if (d.Workdir is { } wd)
        {
            c = c with { WorkingDir = wd };
        }
        if (d.User is { } user)
        {
            c = c with { User = user };
        }
        if (d.Expose is { } expose)
        {
            var ports = new SortedDictionary<string, EmptyObject>(StringComparer.Ordinal);
            foreach (var p in c.ExposedPorts?.Keys ?? [])
            {
                ports[p] = new EmptyObject();
            }
            foreach (var p in expose)
            {
                ports[p] = new EmptyObject();
            }
            c = c with { ExposedPorts = ports };
        }
        if (d.Labels is { } labels)
        {
            var all = new SortedDictionary<string, string>(StringComparer.Ordinal);
            foreach (var (k, v) in c.Labels ?? new Dictionary<string, string>())
            {
                all[k] = v;
            }
            foreach (var (k, v) in labels)
            {
                all[k] = v;
            }
            c = c with { Labels = all };
        }
        if (d.StopSignal is { } sig)
        {
            c = c with { StopSignal = sig };
        }
        return c;
    }

    /// <summary>The environment a step runs with: a default PATH, HOME, LANG and SOURCE_DATE_EPOCH, then the
    /// image's Env, then <paramref name="extra"/>.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> StepEnvironment(ContainerConfig c, DateTimeOffset epoch, IEnumerable<KeyValuePair<string, string>> extra) =>
        ImageEnvironment(c,
        [
            new("LANG", "C.UTF-8"),
            new("SOURCE_DATE_EPOCH", epoch.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture)),
        ], extra);

    /// <summary>A default PATH and HOME, then <paramref name="defaults"/>, then the image's Env (which overrides
    /// them), then <paramref name="extra"/>; sorted by name.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> ImageEnvironment(ContainerConfig c,
        IEnumerable<KeyValuePair<string, string>> defaults, IEnumerable<KeyValuePair<string, string>> extra)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["PATH"] = Sandbox.Sandbox.DefaultPath,
            ["HOME"] = "/root",
        };
        foreach (var (k, v) in defaults)
        {
            env[k] = v;
        }
        foreach (var e in c.Env ?? [])
        {
            int eq = e.IndexOf('=');
            if (eq > 0)
            {
                env[e[..eq]] = e[(eq + 1)..];
            }
        }
        foreach (var (k, v) in extra)
        {
            env[k] = v;
        }
        return [.. env.OrderBy(kv => kv.Key, StringComparer.Ordinal)];
    }
}
