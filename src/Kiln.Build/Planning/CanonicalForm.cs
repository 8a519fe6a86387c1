using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Kiln.Build.Definition;

namespace Kiln.Build.Planning;

/// <summary>The canonical text of steps and bases that goes into cache keys: compact JSON with keys
/// in sorted order, sets sorted and deduplicated, defaults written out.</summary>
internal static class CanonicalForm
{
    private static readonly JsonWriterOptions Options = new()
    {
        Indented = false,
        // Relaxed escaping keeps shell commands readable in the image history; still deterministic.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static string Bootstrap(BootstrapSource source, string identity) => Json(w =>
    {
        w.WriteString("distro", source.Distro);
        w.WriteString("identity", identity);
        WriteArray(w, "packages", SortedSet(source.Packages));
        w.WriteString("suite", source.Suite);
        w.WriteString("variant", source.Variant);
    });

    public static string Step(StepDefinition step) => step switch
    {
        PackagesStep p => Json(w =>
        {
            w.WriteString("kind", "packages");
            WriteArray(w, "packages", SortedSet(p.Packages));
        }),
        RunStep r => Json(w =>
        {
            WriteArray(w, "cache", SortedSet(r.Cache));
            w.WriteString("command", r.Command);
            w.WriteString("kind", "run");
            w.WriteString("network", r.Network == StepNetwork.None ? "none" : "host");
            if (r.Secrets.Count > 0)
            {
                // Ids only: a secret's content never enters a key (changing a token must not change the image).
                WriteArray(w, "secrets", SortedSet(r.Secrets.Select(s => s.Id)));
            }
        }),
        CopyStep c => Json(w =>
        {
            w.WriteString("kind", "copy");
            if (c.Mode is { } mode)
            {
                w.WriteString("mode", Octal(mode));
            }

            w.WriteString("owner", Owner(c));
            WriteArray(w, "sources", c.Sources);
            w.WriteString("to", c.To);
        }),
        EnvStep e => Json(w =>
        {
            w.WriteStartObject("env");
            foreach (var (key, value) in e.Variables.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                w.WriteString(key, value);
            }

            w.WriteEndObject();
            w.WriteString("kind", "env");
        }),
        WorkdirStep d => Json(w =>
        {
            w.WriteString("kind", "workdir");
            w.WriteString("path", d.Path);
        }),
        UserStep u => Json(w =>
        {
            w.WriteString("kind", "user");
            w.WriteString("user", u.User);
        }),
        _ => throw new ArgumentException($"unknown step type {step.GetType().Name}", nameof(step)),
    };

    /// <summary>One line for humans.</summary>
    /// <summary>The <c>config:</c> block; it is part of what a child image (<c>from: NAME</c>) starts from.</summary>
    public static string Config(ConfigDefinition c) => Json(w =>
    {
        if (c.Cmd is { } cmd)
        {
            WriteArray(w, "cmd", cmd);
        }
        if (c.Entrypoint is { } ep)
        {
            WriteArray(w, "entrypoint", ep);
        }
        if (c.Env is { } env)
        {
            w.WriteStartObject("env");
            foreach (var (k, v) in env)
            {
                w.WriteString(k, v);
            }
            w.WriteEndObject();
        }
        if (c.Expose is { } expose)
        {
            WriteArray(w, "expose", expose);
        }
        if (c.Labels is { } labels)
        {
            w.WriteStartObject("labels");
            foreach (var (k, v) in labels.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                w.WriteString(k, v);
            }
            w.WriteEndObject();
        }
        if (c.StopSignal is { } sig)
        {
            w.WriteString("stop-signal", sig);
        }
        if (c.User is { } user)
        {
            w.WriteString("user", user);
        }
        if (c.Workdir is { } wd)
        {
            w.WriteString("workdir", wd);
        }
    });

    public static string Describe(StepDefinition step) => step switch
    {
        PackagesStep p => Truncate("packages " + string.Join(' ', p.Packages)),
        RunStep r => Truncate("run " + r.Command.ReplaceLineEndings(" ").Trim()),
        CopyStep c => Truncate($"copy {string.Join(' ', c.Sources)} -> {c.To}"),
        EnvStep e => Truncate("env " + string.Join(' ', e.Variables.Select(kv => $"{kv.Key}={kv.Value}"))),
        WorkdirStep d => "workdir " + d.Path,
        UserStep u => "user " + u.User,
        _ => step.GetType().Name,
    };

    /// <summary>Copied files belong to root unless an owner is given; a UID alone means GID = UID.</summary>
    public static string Owner(CopyStep copy) =>
        copy.Uid is { } uid ? $"{uid}:{copy.Gid ?? uid}" : "0:0";

    public static string Octal(int mode) => Convert.ToString(mode, 8).PadLeft(4, '0');

    private static List<string> SortedSet(IEnumerable<string> items) =>
        items.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();

    private static string Truncate(string text, int max = 60) =>
        text.Length <= max ? text : text[..(max - 1)].TrimEnd() + "…";

    private static void WriteArray(Utf8JsonWriter writer, string name, IEnumerable<string> items)
    {
        writer.WriteStartArray(name);
        foreach (var item in items)
        {
            writer.WriteStringValue(item);
        }

        writer.WriteEndArray();
    }

    private static string Json(Action<Utf8JsonWriter> body)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, Options))
        {
            writer.WriteStartObject();
            body(writer);
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
