using System.Globalization;
using System.Net;

namespace Kiln.Build.Definition;

public enum ReleaseStrategy { BlueGreen, Canary }

/// <summary>One target of <c>release:</c>: where an image's promoted digests are served, behind a balancer Kiln
/// owns. With <see cref="Servers"/> the instances are run by someone else and Kiln only checks and shifts traffic.</summary>
public sealed record ReleaseTarget
{
    public required string Name { get; init; }
    public required SourceMark Mark { get; init; }
    public required string Image { get; init; }
    public required string Channel { get; init; }

    /// <summary>How many instances Kiln boots (1 when not given); unused with <see cref="Servers"/>.</summary>
    public int Instances { get; init; } = 1;

    /// <summary>The port the instances serve on (the spec's checks on this port are pointed at each server).</summary>
    public required int Port { get; init; }

    /// <summary>Where the balancer listens.</summary>
    public required IPEndPoint Listen { get; init; }

    public ReleaseStrategy Strategy { get; init; } = ReleaseStrategy.BlueGreen;
    public CanarySettings Canary { get; init; } = new();

    /// <summary>External servers (a fleet), or empty when Kiln boots the instances.</summary>
    public IReadOnlyList<IPEndPoint> Servers { get; init; } = [];

    public bool IsFleet => Servers.Count > 0;
}

/// <summary><c>canary: {steps, pause, max-error-rate}</c>: the new set's share of traffic in percent, step by step
/// (the last is always 100); how long each step is watched; the share of the new set's requests that may fail.</summary>
public sealed record CanarySettings
{
    public IReadOnlyList<int> Steps { get; init; } = [10, 50, 100];
    public TimeSpan Pause { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>A fraction, 0 to 1.</summary>
    public double MaxErrorRate { get; init; } = 0.01;
}

/// <summary>The lexical rules of <c>release:</c> values, shared by the validator and the normaliser.</summary>
internal static class ReleaseSyntax
{
    public static readonly string[] TargetKeys = ["image", "channel", "instances", "port", "listen", "strategy", "canary", "servers"];
    public static readonly string[] CanaryKeys = ["steps", "pause", "max-error-rate"];
    public static readonly string[] Strategies = ["blue-green", "canary"];

    /// <summary>ADDR:PORT with an IPv4 address or a bracketed IPv6 one, and a port 1-65535.</summary>
    public static IPEndPoint? Endpoint(string text) =>
        IPEndPoint.TryParse(text, out var ep) && ep.Port > 0 && text.Contains(':', StringComparison.Ordinal)
            && (ep.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork || text.StartsWith('['))
            ? ep : null;

    /// <summary>"10s", "500ms", "2m" or a plain number of seconds.</summary>
    public static TimeSpan? Duration(string text)
    {
        var (number, unit) = text.EndsWith("ms", StringComparison.Ordinal) ? (text[..^2], 0.001)
            : text.EndsWith('s') ? (text[..^1], 1.0)
            : text.EndsWith('m') ? (text[..^1], 60.0)
            : (text, 1.0);
        return double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var n) && n * unit <= 24 * 3600
            ? TimeSpan.FromSeconds(n * unit) : null;
    }

    /// <summary>"1%", "0.5%" or a fraction "0.01": as a fraction 0-1.</summary>
    public static double? Rate(string text)
    {
        bool percent = text.EndsWith('%');
        if (!double.TryParse(percent ? text[..^1] : text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var n))
        {
            return null;
        }
        var fraction = percent ? n / 100 : n;
        return fraction is >= 0 and <= 1 ? fraction : null;
    }

    public static int? Int(string text, int min, int max) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max ? n : null;
}

internal static partial class DefinitionNormaliser
{
    private static List<ReleaseTarget> Release(YMapping release) =>
        [.. release.Entries.Select(e => Target(e.Name!, e.Key.Mark, (YMapping)e.Value))];

    private static ReleaseTarget Target(string name, SourceMark mark, YMapping t)
    {
        string? Get(string key) => t.Get(key) is YScalar { IsNull: false } s ? s.Value : null;
        var canary = t.Get("canary") as YMapping;
        string? CanaryGet(string key) => canary?.Get(key) is YScalar { IsNull: false } s ? s.Value : null;
        var defaults = new CanarySettings();
        var steps = canary?.Get("steps") is YSequence list ? list.Items.Select(i => ReleaseSyntax.Int(((YScalar)i).Value, 1, 100)!.Value).ToList() : [.. defaults.Steps];
        if (steps[^1] != 100)
        {
            steps.Add(100);
        }
        return new ReleaseTarget
        {
            Name = name,
            Mark = mark,
            Image = Get("image")!,
            Channel = Get("channel")!,
            Instances = Get("instances") is { } i ? ReleaseSyntax.Int(i, 1, 64)!.Value : 1,
            Port = ReleaseSyntax.Int(Get("port")!, 1, 65535)!.Value,
            Listen = ReleaseSyntax.Endpoint(Get("listen")!)!,
            Strategy = Get("strategy") == "canary" ? ReleaseStrategy.Canary : ReleaseStrategy.BlueGreen,
            Canary = new CanarySettings
            {
                Steps = steps,
                Pause = CanaryGet("pause") is { } p ? ReleaseSyntax.Duration(p)!.Value : defaults.Pause,
                MaxErrorRate = CanaryGet("max-error-rate") is { } r ? ReleaseSyntax.Rate(r)!.Value : defaults.MaxErrorRate,
            },
            Servers = t.Get("servers") is YSequence servers ? [.. servers.Items.Select(s => ReleaseSyntax.Endpoint(((YScalar)s).Value)!)] : [],
        };
    }
}

internal sealed partial class DefinitionValidator
{
    private void CheckRelease(YNode node, IReadOnlySet<string> images)
    {
        if (node is not YMapping release)
        {
            Problem(node, $"`release` expects a map of target name to target, found {node.KindName}");
            return;
        }
        foreach (var entry in release.Entries)
        {
            if (!CheckKey(entry, release, "in `release`", null))
            {
                continue;
            }
            if (!DefinitionSyntax.ImageName().IsMatch(entry.Name!))
            {
                Problem(entry.Key, $"release target name `{entry.Name}` is not valid: use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit");
            }
            if (entry.Value is not YMapping target)
            {
                Problem(entry.Value, $"release target `{entry.Name}` expects a map with `image`, `channel`, `port` and `listen`, found {entry.Value.KindName}");
                continue;
            }
            CheckTarget(entry.Name!, target, images);
        }
    }

    private void CheckTarget(string name, YMapping target, IReadOnlySet<string> images)
    {
        var where = $"in release target `{name}`";
        CheckKeys(target, where, ReleaseSyntax.TargetKeys);
        if (RequiredString(target, "image", where) is { } image && !images.Contains(image.Value))
        {
            Problem(image, $"no image named `{image.Value}` in this file{NearestName.Hint(image.Value, images)}");
        }
        RequiredString(target, "channel", where);
        if (RequiredString(target, "port", where) is { } port && ReleaseSyntax.Int(port.Value, 1, 65535) is null)
        {
            Problem(port, $"`port` expects a port number 1-65535, found `{port.Value}`");
        }
        if (RequiredString(target, "listen", where) is { } listen && ReleaseSyntax.Endpoint(listen.Value) is null)
        {
            Problem(listen, $"`listen` expects ADDRESS:PORT (such as 127.0.0.1:9080), found `{listen.Value}`");
        }
        if (OptionalString(target, "instances") is { } instances && ReleaseSyntax.Int(instances.Value, 1, 64) is null)
        {
            Problem(instances, $"`instances` expects a number 1-64, found `{instances.Value}`");
        }
        var strategy = OptionalString(target, "strategy");
        if (strategy is not null && !ReleaseSyntax.Strategies.Contains(strategy.Value))
        {
            Problem(strategy, $"`strategy` expects {string.Join(" or ", ReleaseSyntax.Strategies)}, found `{strategy.Value}`{NearestName.Hint(strategy.Value, ReleaseSyntax.Strategies)}");
        }
        if (target.Get("canary") is { } canary)
        {
            if (strategy?.Value != "canary")
            {
                Problem(canary, "`canary` is set but `strategy` is not canary; add `strategy: canary` or drop `canary`");
            }
            CheckCanary(canary);
        }
        if (target.Get("servers") is { } servers)
        {
            var items = StringOrList(servers, "servers", "a list of ADDRESS:PORT");
            if (servers is YSequence { Items.Count: 0 })
            {
                Problem(servers, "`servers` is empty; list the fleet's ADDRESS:PORT, or drop `servers` to let Kiln boot the instances");
            }
            foreach (var s in items.Where(s => ReleaseSyntax.Endpoint(s.Value) is null))
            {
                Problem(s, $"a server expects ADDRESS:PORT (such as 10.0.0.5:8080), found `{s.Value}`");
            }
            if (target.Get("instances") is { } both)
            {
                Problem(both, "`instances` and `servers` both set: Kiln boots `instances` itself, `servers` are run by others; keep one");
            }
        }
    }

    private void CheckCanary(YNode node)
    {
        if (node is not YMapping canary)
        {
            Problem(node, $"`canary` expects a map with `steps`, `pause` and `max-error-rate`, found {node.KindName}");
            return;
        }
        CheckKeys(canary, "in `canary`", ReleaseSyntax.CanaryKeys);
        if (canary.Get("steps") is { } steps)
        {
            if (steps is not YSequence { Items.Count: > 0 } list)
            {
                Problem(steps, $"`steps` expects a list of percentages such as [10, 50, 100], found {steps.KindName}");
            }
            else
            {
                int last = 0;
                foreach (var item in list.Items)
                {
                    var n = item is YScalar s ? ReleaseSyntax.Int(s.Value, 1, 100) : null;
                    if (n is null)
                    {
                        Problem(item, "a canary step expects a percentage 1-100 of the traffic");
                    }
                    else if (n <= last)
                    {
                        Problem(item, $"canary steps must grow: {n} comes after {last}");
                    }
                    last = n ?? last;
                }
            }
        }
        if (OptionalString(canary, "pause") is { } pause && ReleaseSyntax.Duration(pause.Value) is null)
        {
            Problem(pause, $"`pause` expects a duration such as 10s, 500ms or 2m, found `{pause.Value}`");
        }
        if (OptionalString(canary, "max-error-rate") is { } rate && ReleaseSyntax.Rate(rate.Value) is null)
        {
            Problem(rate, $"`max-error-rate` expects a percentage such as 1% (0-100%), found `{rate.Value}`");
        }
    }
}
