using System.Diagnostics;
using System.Globalization;
using Kiln.Build.Definition;
using Kiln.Build.Sandbox;
using Kiln.Build.Store;
using Kiln.Oci;

namespace Kiln.Build.Release;

public sealed record ReleaseOptions
{
    /// <summary>The command line that runs <c>kiln release-instance</c> (kiln itself), before its arguments.</summary>
    public required IReadOnlyList<string> InstanceHostCommand { get; init; }

    /// <summary>How long a new instance may take to come up and pass its checks.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(60);
}

/// <summary>What a release did.</summary>
public sealed record ReleaseResult(string Target, string Digest, string? Previous, ReleaseStrategy Strategy, TimeSpan Switch, long FailedRequests, bool AlreadyServing);

/// <summary>Brings a target from what it serves to a new digest: a new (green) set is started and checked, then the
/// balancer is switched to it at once (blue-green) or in steps while its error rate is watched (canary), and the old
/// set is drained and stopped. The target's state is written at every step, so a later run rolls an interrupted
/// release back (<see cref="RecoverAsync"/>) and never leaves two sets serving.</summary>
public sealed class Releaser
{
    private readonly KilnStore _store;
    private readonly ReleaseTarget _target;
    private readonly string _definitionPath;
    private readonly ReleaseOptions _options;
    private readonly IProgress<string>? _progress;
    private readonly TargetFolder _folder;
    private readonly Balancer _balancer;
    private readonly BridgeNetwork _network;

    public Releaser(KilnStore store, ReleaseTarget target, string definitionPath, ReleaseOptions options, IProgress<string>? progress = null)
    {
        _store = store;
        _target = target;
        _definitionPath = definitionPath;
        _options = options;
        _progress = progress;
        _folder = new TargetFolder(store, target.Name);
        _balancer = new Balancer(_folder.Dir, target.Name, target.Listen);
        _network = new BridgeNetwork(TargetFolder.ReleaseRoot(store));
    }

    private readonly Stopwatch _clock = Stopwatch.StartNew();

    private void Say(string message) => _progress?.Report($"[{_clock.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture),5}s] {message}");

    private IDisposable Lock(TargetState? state) => _folder.TryLock()
        ?? throw ReleaseException.Busy(_target.Name, state is { ChangedBy: > 0 } s ? $"pid {s.ChangedBy}" : "its lock is held");

    /// <summary>Serves <paramref name="digest"/> (or the image's current tag) on the target, if the channel gate lets it.</summary>
    public async Task<ReleaseResult> ReleaseAsync(Digest? digest, IChannelRecords channels, bool gate, ReleaseStrategy? strategy, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(channels);
        var state = _folder.Read();
        using var held = Lock(state);
        state = await RecoverAsync(_folder.Read(), ct).ConfigureAwait(false);
        var wanted = digest ?? _store.Names.TryGetTag(_target.Image)?.Digest
            ?? throw ReleaseException.BadInput($"the store has no image named '{_target.Image}' (build it, or pass --digest)");
        if (!_store.Content.HasBlob(wanted))
        {
            throw ReleaseException.BadInput($"the store has no image {wanted} (pull or build it first)");
        }
        if (gate && !channels.IsPromoted(wanted, _target.Channel))
        {
            throw ReleaseException.NotPromoted(_target.Name, wanted.ToString(), _target.Channel, _target.Image);
        }
        bool sameServers = _target.IsFleet
            ? state.Servers.Select(s => s.Address).Order().SequenceEqual(_target.Servers.Select(e => e.ToString()).Order())
            : state.Servers.Count == _target.Instances && state.Servers.All(Alive);
        if (state.Serving == wanted.ToString() && sameServers && ProcessIdentity.Alive(state.BalancerPid, state.BalancerStart))
        {
            Say($"{_target.Name} already serves {Short(wanted.ToString())}");
            return new ReleaseResult(_target.Name, wanted.ToString(), state.Previous, strategy ?? _target.Strategy, TimeSpan.Zero, 0, AlreadyServing: true);
        }
        var clock = Stopwatch.StartNew();
        state = await _folder.WriteAsync(state with { Pending = wanted.ToString(), PendingServers = [], ChangedBy = Environment.ProcessId }).ConfigureAwait(false);
        try
        {
            state = await StartGreenAsync(state, wanted, ct).ConfigureAwait(false);
            var (next, failed) = await SwitchAsync(state, strategy ?? _target.Strategy, ct).ConfigureAwait(false);
            state = next;
            state = await RetireAsync(state, ct).ConfigureAwait(false);
            Say($"{_target.Name} serves {Short(wanted.ToString())} ({clock.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s)");
            return new ReleaseResult(_target.Name, wanted.ToString(), state.Previous, strategy ?? _target.Strategy, clock.Elapsed, failed, AlreadyServing: false);
        }
        catch (Exception) when (_folder.Read() is { Pending: not null } interrupted)
        {
            // Cancelled, or a step failed before the switch was committed: back to what served before.
            await RecoverAsync(interrupted, CancellationToken.None).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Serves the previous digest again.</summary>
    public async Task<ReleaseResult> RollbackAsync(CancellationToken ct)
    {
        var state = _folder.Read();
        if (state?.Previous is not { } previous)
        {
            throw ReleaseException.Failed($"{_target.Name} has no previous digest to roll back to");
        }
        return await ReleaseAsync(Digest.Parse(previous), new AnyChannel(), gate: false, ReleaseStrategy.BlueGreen, ct).ConfigureAwait(false);
    }

    private sealed class AnyChannel : IChannelRecords
    {
        // A rollback serves what the target served before: it passed the gate then.
        public bool IsPromoted(Digest digest, string channel) => true;
    }

    /// <summary>Stops everything of the target: instances, balancer, addresses, its state.</summary>
    public async Task StopAsync(CancellationToken ct)
    {
        var state = _folder.Read();
        using var held = Lock(state);
        state = _folder.Read();
        if (state is not null)
        {
            foreach (var s in state.PendingServers.Concat(state.Servers).Concat(state.Retiring))
            {
                await StopServerAsync(s, ct).ConfigureAwait(false);
            }
            await _balancer.StopAsync(state.BalancerPid, state.BalancerStart).ConfigureAwait(false);
        }
        if (Directory.Exists(Path.Combine(_folder.Dir, "instances")))
        {
            Directory.Delete(Path.Combine(_folder.Dir, "instances"), recursive: true);
        }
        await _folder.DeleteAsync().ConfigureAwait(false);
        if (!Directory.EnumerateFiles(TargetFolder.ReleaseRoot(_store), "state.json", SearchOption.AllDirectories).Any())
        {
            await _network.RemoveBridgeAsync(ct).ConfigureAwait(false);
        }
    }

    /// <summary>Undoes what an interrupted run left: a pending set is stopped and the balancer serves the committed
    /// set only; a retiring set is stopped. Returns the state after.</summary>
    internal async Task<TargetState> RecoverAsync(TargetState? state, CancellationToken ct)
    {
        state ??= new TargetState { Target = _target.Name, Image = _target.Image };
        if (state.Pending is null && state.Retiring.Count == 0)
        {
            return state;
        }
        if (state.Pending is not null)
        {
            Say($"{_target.Name}: rolling back the interrupted release of {Short(state.Pending)}");
        }
        if (ProcessIdentity.Alive(state.BalancerPid, state.BalancerStart))
        {
            // Traffic first: the committed set takes it all before anything else is stopped.
            var (pid, start) = await _balancer.ApplyAsync(Config(state.Servers, []), state.BalancerPid, state.BalancerStart, ct).ConfigureAwait(false);
            state = state with { BalancerPid = pid, BalancerStart = start };
        }
        foreach (var s in state.PendingServers.Concat(state.Retiring))
        {
            await StopServerAsync(s, ct).ConfigureAwait(false);
        }
        return await _folder.WriteAsync(state with { Pending = null, PendingServers = [], Retiring = [], ChangedBy = 0 }).ConfigureAwait(false);
    }

    private static string Short(string digest) => digest.Length > 19 ? digest[..19] : digest;

    private static bool Alive(ServerRecord s) => s.IsFleet || ProcessIdentity.Alive(s.HostPid, s.HostStart);

    private IEnumerable<BalancerServer> Config(IEnumerable<ServerRecord> serving, IEnumerable<ServerRecord> green, bool greenEnabled = false, int greenWeight = Balancer.FullWeight) =>
        serving.Where(s => s.Address is not null).Select(s => new BalancerServer(s.Id, s.Address!, Balancer.FullWeight, true))
            .Concat(green.Where(s => s.Address is not null).Select(s => new BalancerServer(s.Id, s.Address!, greenWeight, greenEnabled)));

    /// <summary>Starts the new set (or, for a fleet, takes its addresses) and checks every server.</summary>
    private async Task<TargetState> StartGreenAsync(TargetState state, Digest digest, CancellationToken ct)
    {
        if (_target.IsFleet)
        {
            var servers = new List<ServerRecord>();
            foreach (var ep in _target.Servers)
            {
                servers.Add(new ServerRecord { Id = "s" + state.NextId.ToString(CultureInfo.InvariantCulture), Digest = digest.ToString(), Address = ep.ToString() });
                state = state with { NextId = state.NextId + 1 };
            }
            state = await _folder.WriteAsync(state with { PendingServers = servers }).ConfigureAwait(false);
            await FleetChecks.CheckAsync(_definitionPath, _target, servers, ct).ConfigureAwait(false);
            return state;
        }
        Say($"{_target.Name}: starting {_target.Instances} instance(s) of {Short(digest.ToString())}");
        var started = new List<ServerRecord>();
        for (int i = 0; i < _target.Instances; i++)
        {
            var id = "s" + state.NextId.ToString(CultureInfo.InvariantCulture);
            state = await _folder.WriteAsync(state with { NextId = state.NextId + 1 }).ConfigureAwait(false);
            var (pid, start) = await LaunchHostAsync(id, digest, ct).ConfigureAwait(false);
            started.Add(new ServerRecord { Id = id, Digest = digest.ToString(), HostPid = pid, HostStart = start });
            state = await _folder.WriteAsync(state with { PendingServers = [.. started] }).ConfigureAwait(false);
        }
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < started.Count; i++)
        {
            var s = started[i];
            InstanceReady? ready;
            while ((ready = InstanceHost.ReadReady(_folder.InstanceDir(s.Id))) is null)
            {
                if (!ProcessIdentity.Alive(s.HostPid, s.HostStart))
                {
                    throw ReleaseException.CheckFailed(_target.Name, Short(digest.ToString()), $"instance {s.Id} exited before it was up; see {InstanceLog(s.Id)}: {Tail(InstanceLog(s.Id))}");
                }
                if (clock.Elapsed > _options.StartTimeout)
                {
                    throw ReleaseException.CheckFailed(_target.Name, Short(digest.ToString()), $"instance {s.Id} was not up within {_options.StartTimeout.TotalSeconds} s");
                }
                await Task.Delay(20, ct).ConfigureAwait(false);
            }
            if (!ready.Passed)
            {
                throw ReleaseException.CheckFailed(_target.Name, Short(digest.ToString()), $"instance {s.Id}: {string.Join("; ", ready.Failures)}");
            }
            var (address, veth) = await _network.AddAsync(s.Id, ready.NetPid, ct).ConfigureAwait(false);
            started[i] = s with
            {
                NetPid = ready.NetPid,
                NetNs = ProcessIdentity.NetNs(ready.NetPid),
                Address = $"{address}:{_target.Port.ToString(CultureInfo.InvariantCulture)}",
                HostVeth = veth,
            };
            state = await _folder.WriteAsync(state with { PendingServers = [.. started] }).ConfigureAwait(false);
        }
        Say($"{_target.Name}: {started.Count} instance(s) up and checked: {string.Join(", ", started.Select(s => s.Address))}");
        return state;
    }

    private string InstanceLog(string id) => Path.Combine(_folder.InstanceDir(id), "host.log");

    private static string Tail(string path) => File.Exists(path) ? string.Join(" | ", File.ReadLines(path).TakeLast(5)) : "(no output)";

    /// <summary>Starts the instance host detached (its own session, no terminal, output to a log file) so it outlives
    /// this command; returns its pid and start time.</summary>
    private async Task<(int Pid, ulong Start)> LaunchHostAsync(string id, Digest digest, CancellationToken ct)
    {
        var dir = _folder.InstanceDir(id);
        Directory.CreateDirectory(dir);
        var pidFile = Path.Combine(dir, "host.pid");
        var psi = new ProcessStartInfo(HostPrograms.Sh.Name) { UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        // sh forks the host into its own session and reports its pid; the host's output goes to its log.
        List<string> args = ["-c", "\"$@\" </dev/null >>\"$0/host.log\" 2>&1 & echo $! > \"$0/host.pid\"", dir,
            HostPrograms.Resolve(HostPrograms.Setsid), .. _options.InstanceHostCommand,
            "release-instance", "--store", _store.Root, "--file", _definitionPath, "--image", _target.Image, "--digest", digest.ToString(), "--dir", dir];
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        InheritedDescriptors.CloseOnExec();
        using (var sh = Process.Start(psi)!)
        {
            sh.StandardInput.Close();
            await sh.WaitForExitAsync(ct).ConfigureAwait(false);
        }
        var pid = int.Parse(File.ReadAllText(pidFile).Trim(), CultureInfo.InvariantCulture);
        // setsid execs the host in place (the shell's child is not a group leader), so this pid is the host's.
        var start = ProcessIdentity.StartTime(pid) ?? throw ReleaseException.CheckFailed(_target.Name, Short(digest.ToString()),
            $"instance {id} exited at once; see {InstanceLog(id)}: {Tail(InstanceLog(id))}");
        return (pid, start);
    }

    private async Task StopServerAsync(ServerRecord s, CancellationToken ct)
    {
        if (s.IsFleet)
        {
            return;
        }
        var pid = s.HostPid;
        var start = s.HostStart;
        if (pid == 0 && File.Exists(Path.Combine(_folder.InstanceDir(s.Id), "host.pid"))
            && int.TryParse(File.ReadAllText(Path.Combine(_folder.InstanceDir(s.Id), "host.pid")).Trim(), out var recorded))
        {
            (pid, start) = (recorded, ProcessIdentity.StartTime(recorded) ?? 0);
        }
        await ProcessIdentity.StopAsync(pid, start, TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        // The instance dies with its host; its namespace, and the veth in it, with the instance.
        if (s.NetPid > 0)
        {
            var clock = Stopwatch.StartNew();
            while (ProcessIdentity.NetNs(s.NetPid) is { } ns && ns == s.NetNs && clock.Elapsed < TimeSpan.FromSeconds(10))
            {
                await Task.Delay(20, ct).ConfigureAwait(false);
            }
        }
        await _network.DelAsync(s.Id, ct).ConfigureAwait(false);
        var dir = _folder.InstanceDir(s.Id);
        if (Directory.Exists(dir))
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Moves the traffic to the pending set and commits it as serving; returns the state and the requests
    /// that failed on the new set.</summary>
    private async Task<(TargetState State, long Failed)> SwitchAsync(TargetState state, ReleaseStrategy strategy, CancellationToken ct)
    {
        var blue = state.Servers;
        var green = state.PendingServers;
        bool canary = strategy == ReleaseStrategy.Canary && blue.Count > 0;
        // The new servers join the config unserved (blue-green: in maintenance; canary: at weight 0), so the reload
        // changes nothing for clients and health checks start.
        var (pid, start) = await _balancer.ApplyAsync(Config(blue, green, greenEnabled: canary || blue.Count == 0, greenWeight: canary ? 0 : Balancer.FullWeight),
            state.BalancerPid, state.BalancerStart, ct).ConfigureAwait(false);
        state = await _folder.WriteAsync(state with { BalancerPid = pid, BalancerStart = start }).ConfigureAwait(false);
        long failed = 0;
        if (blue.Count == 0)
        {
            await WaitUpAsync(green, ct).ConfigureAwait(false);
        }
        else if (!canary)
        {
            foreach (var g in green)
            {
                await _balancer.SetStateAsync(g.Id, "ready", ct).ConfigureAwait(false);
            }
            await WaitUpAsync(green, ct).ConfigureAwait(false);
            foreach (var b in blue)
            {
                await _balancer.SetStateAsync(b.Id, "drain", ct).ConfigureAwait(false);
            }
            Say($"{_target.Name}: switched to the new set");
        }
        else
        {
            await WaitUpAsync(green, ct).ConfigureAwait(false);
            failed = await CanaryAsync(state, blue, green, ct).ConfigureAwait(false);
        }
        state = await _folder.WriteAsync(state with
        {
            Previous = state.Serving is { } serving && serving != state.Pending ? serving : state.Previous,
            Serving = state.Pending,
            Servers = green,
            Retiring = blue,
            Pending = null,
            PendingServers = [],
        }).ConfigureAwait(false);
        return (state, failed);
    }

    private async Task WaitUpAsync(IReadOnlyList<ServerRecord> servers, CancellationToken ct)
    {
        var names = servers.Select(s => s.Id).ToHashSet(StringComparer.Ordinal);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var stats = (await _balancer.StatsAsync(ct).ConfigureAwait(false)).Where(s => names.Contains(s.Name)).ToList();
            if (stats.Count == names.Count && stats.All(s => s.Status.StartsWith("UP", StringComparison.Ordinal) && !s.Status.Contains("going down", StringComparison.Ordinal)))
            {
                return;
            }
            if (clock.Elapsed > TimeSpan.FromSeconds(15))
            {
                throw ReleaseException.CheckFailed(_target.Name, "new set", "the balancer's health checks do not reach " +
                    string.Join(", ", stats.Where(s => !s.Status.StartsWith("UP", StringComparison.Ordinal)).Select(s => $"{s.Name} ({s.Status})")));
            }
            await Task.Delay(50, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Shifts the weights step by step, watching the new set's answers between steps; rolls back (and throws)
    /// when their error rate passes the limit or a new server goes down. Returns the failed requests seen.</summary>
    private async Task<long> CanaryAsync(TargetState state, IReadOnlyList<ServerRecord> blue, IReadOnlyList<ServerRecord> green, CancellationToken ct)
    {
        var names = green.Select(s => s.Id).ToHashSet(StringComparer.Ordinal);
        var baseline = (await _balancer.StatsAsync(ct).ConfigureAwait(false)).Where(s => names.Contains(s.Name)).ToList();
        long baseRequests = baseline.Sum(s => s.Requests), baseFailed = baseline.Sum(s => s.Failed);
        long requests = 0, failed = 0;
        foreach (var percent in _target.Canary.Steps)
        {
            // Weights per server such that the new set gets `percent` of the traffic whatever the two sets' sizes.
            int gw = percent * blue.Count, bw = (100 - percent) * green.Count;
            int scale = Math.Max(1, (Math.Max(gw, bw) + 255) / 256);
            foreach (var g in green)
            {
                await _balancer.SetWeightAsync(g.Id, gw / scale, ct).ConfigureAwait(false);
            }
            foreach (var b in blue)
            {
                if (percent == 100)
                {
                    await _balancer.SetStateAsync(b.Id, "drain", ct).ConfigureAwait(false);
                }
                else
                {
                    await _balancer.SetWeightAsync(b.Id, bw / scale, ct).ConfigureAwait(false);
                }
            }
            Say($"{_target.Name}: canary at {percent}%");
            var clock = Stopwatch.StartNew();
            do
            {
                await Task.Delay(100, ct).ConfigureAwait(false);
                var now = (await _balancer.StatsAsync(ct).ConfigureAwait(false)).Where(s => names.Contains(s.Name)).ToList();
                requests = now.Sum(s => s.Requests) - baseRequests;
                failed = now.Sum(s => s.Failed) - baseFailed;
                string? why = null;
                if (now.FirstOrDefault(s => !s.Status.StartsWith("UP", StringComparison.Ordinal)) is { } down)
                {
                    why = $"instance {down.Name} failed the balancer's health check ({down.Status}) at {percent}%";
                }
                else if (requests > 0 && (double)failed / requests > _target.Canary.MaxErrorRate)
                {
                    why = $"error rate {(100.0 * failed / requests).ToString("0.#", CultureInfo.InvariantCulture)}% of {requests} request(s) " +
                        $"passed max-error-rate {(100 * _target.Canary.MaxErrorRate).ToString("0.##", CultureInfo.InvariantCulture)}% at {percent}%";
                }
                if (why is not null)
                {
                    await UndoCanaryAsync(blue, green).ConfigureAwait(false);
                    throw ReleaseException.RolledBack(_target.Name, why, failed);
                }
            }
            while (percent < 100 && clock.Elapsed < _target.Canary.Pause);
        }
        return failed;
    }

    /// <summary>All traffic back to the old set, at once; the caller's recovery stops the new one.</summary>
    private async Task UndoCanaryAsync(IReadOnlyList<ServerRecord> blue, IReadOnlyList<ServerRecord> green)
    {
        foreach (var b in blue)
        {
            await _balancer.SetStateAsync(b.Id, "ready", CancellationToken.None).ConfigureAwait(false);
            await _balancer.SetWeightAsync(b.Id, Balancer.FullWeight, CancellationToken.None).ConfigureAwait(false);
        }
        foreach (var g in green)
        {
            await _balancer.SetStateAsync(g.Id, "maint", CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <summary>Drains the old set (its open sessions end), stops it, and writes the config of the new set alone.</summary>
    private async Task<TargetState> RetireAsync(TargetState state, CancellationToken ct)
    {
        if (state.Retiring.Count > 0)
        {
            var names = state.Retiring.Select(s => s.Id).ToHashSet(StringComparer.Ordinal);
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < TimeSpan.FromSeconds(10)
                && (await _balancer.StatsAsync(ct).ConfigureAwait(false)).Any(s => names.Contains(s.Name) && s.Sessions > 0))
            {
                await Task.Delay(50, ct).ConfigureAwait(false);
            }
            Say($"{_target.Name}: old set drained");
            foreach (var b in state.Retiring)
            {
                await _balancer.SetStateAsync(b.Id, "maint", ct).ConfigureAwait(false);
            }
            foreach (var b in state.Retiring)
            {
                await StopServerAsync(b, ct).ConfigureAwait(false);
            }
        }
        Say($"{_target.Name}: old set stopped");
        var (pid, start) = await _balancer.ApplyAsync(Config(state.Servers, []), state.BalancerPid, state.BalancerStart, ct).ConfigureAwait(false);
        return await _folder.WriteAsync(state with { Retiring = [], BalancerPid = pid, BalancerStart = start, ChangedBy = 0 }).ConfigureAwait(false);
    }

    /// <summary>The target as it is: its recorded state, each server's liveness, and the balancer's own view.</summary>
    public async Task<TargetStatus> StatusAsync(CancellationToken ct)
    {
        var state = _folder.Read();
        if (state is null)
        {
            return new TargetStatus(_target.Name, null, false, [], null);
        }
        bool balancer = ProcessIdentity.Alive(state.BalancerPid, state.BalancerStart);
        IReadOnlyList<ServerStat>? stats = null;
        if (balancer)
        {
            try
            {
                stats = await _balancer.StatsAsync(ct).ConfigureAwait(false);
            }
            catch (ReleaseException)
            {
            }
        }
        var servers = state.Servers.Select(s => (s, "serving")).Concat(state.PendingServers.Select(s => (s, "pending"))).Concat(state.Retiring.Select(s => (s, "retiring")))
            .Select(p => new ServerStatus(p.s, p.Item2, Alive(p.s), stats?.FirstOrDefault(x => x.Name == p.s.Id)))
            .ToList();
        bool interrupted = state.Pending is not null && !ProcessIdentity.Alive(state.ChangedBy, ProcessIdentity.StartTime(state.ChangedBy) ?? 0)
            || state.Pending is not null && _folder.TryLock() is { } free && Dispose(free);
        return new TargetStatus(_target.Name, state, balancer, servers, interrupted ? "a release was interrupted; the next `kiln release` rolls it back" : null);
    }

    private static bool Dispose(IDisposable d)
    {
        d.Dispose();
        return true;
    }
}

public sealed record ServerStatus(ServerRecord Server, string Set, bool Alive, ServerStat? Balancer);

public sealed record TargetStatus(string Target, TargetState? State, bool BalancerAlive, IReadOnlyList<ServerStatus> Servers, string? Note);
