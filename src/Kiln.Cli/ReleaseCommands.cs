using System.Globalization;
using Kiln.Build.Definition;
using Kiln.Build.Promotion;
using Kiln.Build.Release;
using Kiln.Build.Store;
using Kiln.Oci;

namespace Kiln.Cli;

/// <summary><c>kiln release TARGET</c>, <c>kiln release status|stop TARGET</c>, <c>kiln rollback TARGET</c>, and the
/// hidden <c>kiln release-instance</c> that owns one serving instance.</summary>
internal static class ReleaseCommands
{
    private static readonly Dictionary<string, string> Aliases = new() { ["-f"] = "--file", ["-h"] = "--help" };

    public static async Task<int> ReleaseAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        if (args.Length > 0 && args[0] == "status")
        {
            return await StatusAsync(args[1..], stdout, ct).ConfigureAwait(false);
        }
        if (args.Length > 0 && args[0] == "stop")
        {
            return await StopAsync(args[1..], stdout, ct).ConfigureAwait(false);
        }
        var a = Arguments.Parse(args, "release", ["--json", "--help"], ["--file", "--digest"], Aliases);
        if (a.Has("--help"))
        {
            stdout.WriteLine(Help.Release);
            return ExitCodes.Ok;
        }
        var (store, target, file) = Open(a, "release");
        using (store)
        {
            Digest? digest = null;
            if (a.Last("--digest") is { } d)
            {
                digest = Digest.TryParse(d, out var parsed) ? parsed : throw new UsageException($"kiln release: --digest takes sha256:HEX, not '{d}'");
            }
            bool json = a.Has("--json");
            var releaser = Releaser(store, target, file, json ? stderr : stdout);
            return await RunAsync(() => releaser.ReleaseAsync(digest, new PromotedChannels(new PromotionLog(store)), gate: true, strategy: null, ct), json, stdout, stderr).ConfigureAwait(false);
        }
    }

    public static async Task<int> RollbackAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        var a = Arguments.Parse(args, "rollback", ["--json", "--help"], ["--file"], Aliases);
        if (a.Has("--help"))
        {
            stdout.WriteLine(Help.Rollback);
            return ExitCodes.Ok;
        }
        var (store, target, file) = Open(a, "rollback");
        using (store)
        {
            bool json = a.Has("--json");
            var releaser = Releaser(store, target, file, json ? stderr : stdout);
            return await RunAsync(() => releaser.RollbackAsync(ct), json, stdout, stderr).ConfigureAwait(false);
        }
    }

    private static async Task<int> RunAsync(Func<Task<ReleaseResult>> release, bool json, TextWriter stdout, TextWriter stderr)
    {
        ReleaseResult result;
        try
        {
            result = await release().ConfigureAwait(false);
        }
        catch (ReleaseException e)
        {
            stderr.WriteLine("error: " + e.Message);
            if (json)
            {
                stdout.WriteLine(JsonOutput.Write(w =>
                {
                    w.WriteStartObject();
                    w.WriteBoolean("released", false);
                    w.WriteString("error", e.Message);
                    if (e.FailedRequests is { } f)
                    {
                        w.WriteNumber("failedRequests", f);
                    }
                    w.WriteEndObject();
                }));
            }
            return e.IsBadInput ? ExitCodes.BadInput : ExitCodes.Failed;
        }
        if (json)
        {
            stdout.WriteLine(JsonOutput.Write(w =>
            {
                w.WriteStartObject();
                w.WriteBoolean("released", true);
                w.WriteString("target", result.Target);
                w.WriteString("digest", result.Digest);
                if (result.Previous is { } p)
                {
                    w.WriteString("previous", p);
                }
                w.WriteString("strategy", result.Strategy == ReleaseStrategy.Canary ? "canary" : "blue-green");
                w.WriteBoolean("alreadyServing", result.AlreadyServing);
                w.WriteNumber("seconds", Math.Round(result.Switch.TotalSeconds, 3));
                w.WriteNumber("failedRequests", result.FailedRequests);
                w.WriteEndObject();
            }));
        }
        return ExitCodes.Ok;
    }

    private static async Task<int> StatusAsync(string[] args, TextWriter stdout, CancellationToken ct)
    {
        var a = Arguments.Parse(args, "release status", ["--json", "--help"], ["--file"], Aliases);
        if (a.Has("--help"))
        {
            stdout.WriteLine(Help.ReleaseStatus);
            return ExitCodes.Ok;
        }
        var (store, target, file) = Open(a, "release status");
        using (store)
        {
            var status = await Releaser(store, target, file, null).StatusAsync(ct).ConfigureAwait(false);
            if (a.Has("--json"))
            {
                stdout.WriteLine(StatusJson(status));
                return ExitCodes.Ok;
            }
            var s = status.State;
            stdout.WriteLine($"target:   {status.Target}");
            stdout.WriteLine($"serving:  {s?.Serving ?? "nothing"}");
            stdout.WriteLine($"previous: {s?.Previous ?? "none"}");
            if (s?.Pending is { } pending)
            {
                stdout.WriteLine($"pending:  {pending}");
            }
            stdout.WriteLine($"balancer: {(s is null || s.BalancerPid == 0 ? "none" : $"pid {s.BalancerPid} {(status.BalancerAlive ? "running" : "not running")}")} on {target.Listen}");
            foreach (var server in status.Servers)
            {
                var r = server.Server;
                var b = server.Balancer is { } st ? $"{st.Status}, weight {st.Weight}, {st.Requests} requests, {st.Failed} failed" : "not in the balancer";
                stdout.WriteLine($"  {r.Id} {server.Set,-8} {r.Address ?? "-",-21} {(r.HostPid > 0 ? $"pid {r.HostPid} " : "")}{(server.Alive ? "alive" : "dead")}: {b}");
            }
            if (status.Note is { } note)
            {
                stdout.WriteLine("note: " + note);
            }
            return ExitCodes.Ok;
        }
    }

    private static string StatusJson(TargetStatus status) => JsonOutput.Write(w =>
    {
        var s = status.State;
        w.WriteStartObject();
        w.WriteString("target", status.Target);
        w.WriteString("serving", s?.Serving);
        w.WriteString("previous", s?.Previous);
        w.WriteString("pending", s?.Pending);
        w.WriteNumber("balancerPid", s?.BalancerPid ?? 0);
        w.WriteBoolean("balancerAlive", status.BalancerAlive);
        w.WriteStartArray("servers");
        foreach (var server in status.Servers)
        {
            var r = server.Server;
            w.WriteStartObject();
            w.WriteString("id", r.Id);
            w.WriteString("set", server.Set);
            w.WriteString("digest", r.Digest);
            w.WriteString("address", r.Address);
            w.WriteNumber("pid", r.HostPid);
            w.WriteNumber("netPid", r.NetPid);
            w.WriteString("netns", r.NetNs);
            w.WriteString("veth", r.HostVeth);
            w.WriteBoolean("alive", server.Alive);
            if (server.Balancer is { } b)
            {
                w.WriteString("status", b.Status);
                w.WriteNumber("weight", b.Weight);
                w.WriteNumber("requests", b.Requests);
                w.WriteNumber("failed", b.Failed);
            }
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteString("note", status.Note);
        w.WriteEndObject();
    });

    private static async Task<int> StopAsync(string[] args, TextWriter stdout, CancellationToken ct)
    {
        var a = Arguments.Parse(args, "release stop", ["--help"], ["--file"], Aliases);
        if (a.Has("--help"))
        {
            stdout.WriteLine(Help.ReleaseStop);
            return ExitCodes.Ok;
        }
        var (store, target, file) = Open(a, "release stop");
        using (store)
        {
            await Releaser(store, target, file, stdout).StopAsync(ct).ConfigureAwait(false);
            stdout.WriteLine($"{target.Name}: stopped");
            return ExitCodes.Ok;
        }
    }

    /// <summary>The hidden command a release starts, detached, for each instance.</summary>
    public static async Task<int> InstanceAsync(string[] args, CancellationToken ct)
    {
        var a = Arguments.Parse(args, "release-instance", [], ["--store", "--file", "--image", "--digest", "--dir"]);
        string Need(string o) => a.Last(o) ?? throw new UsageException($"kiln release-instance: {o} is required");
        return await InstanceHost.RunAsync(Need("--store"), Need("--file"), Need("--image"), Digest.Parse(Need("--digest")), Need("--dir"), ct).ConfigureAwait(false);
    }

    private static Releaser Releaser(KilnStore store, ReleaseTarget target, string file, TextWriter? progress) =>
        new(store, target, file, new ReleaseOptions { InstanceHostCommand = SelfCommand() },
            progress is null ? null : new SyncProgress(line => progress.WriteLine(line)));

    /// <summary>This kiln's own command line: the native binary, or <c>dotnet kiln.dll</c> when run so.</summary>
    private static List<string> SelfCommand()
    {
        var process = Environment.ProcessPath ?? throw new InvalidOperationException("kiln cannot tell its own path");
        return Path.GetFileNameWithoutExtension(process) == "dotnet"
            ? [process, Path.Combine(AppContext.BaseDirectory, "kiln.dll")]
            : [process];
    }

    private static (KilnStore Store, ReleaseTarget Target, string File) Open(Arguments a, string command)
    {
        if (a.Positionals.Count != 1)
        {
            throw new UsageException($"kiln {command}: takes one TARGET (see 'kiln {command} --help')");
        }
        var file = PathArguments.Definition(command, a.Last("--file") ?? ".");
        var definition = DefinitionLoader.Load(file);
        var name = a.Positionals[0];
        var target = definition.Release.FirstOrDefault(t => t.Name == name)
            ?? throw ReleaseException.UnknownTarget(name, definition.Path, definition.Release.Select(t => t.Name));
        if (!Environment.IsPrivilegedProcess)
        {
            throw new UsageException($"kiln {command} boots instances in namespaces and joins them to a bridge: run it as root");
        }
        return (KilnStore.Open(Cli.StoreRoot()), target, definition.Path);
    }

    /// <summary>Reports on the calling thread, in order (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SyncProgress(Action<string> report) : IProgress<string>
    {
        public void Report(string value) => report(value);
    }
}
