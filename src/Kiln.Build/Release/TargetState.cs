using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Kiln.Build.Store;
using Kiln.Oci;

namespace Kiln.Build.Release;

/// <summary>One server of a target: an instance Kiln booted (its host process, namespace and bridge address) or,
/// for a fleet, an address someone else serves.</summary>
public sealed record ServerRecord
{
    /// <summary>Unique within the target; the balancer's server name and the network attachment's id.</summary>
    public required string Id { get; init; }
    public required string Digest { get; init; }

    /// <summary>The detached process that owns the instance (kiln's instance host), and its start time (clock ticks
    /// since boot) so a reused pid is never taken for it; 0 for a fleet server.</summary>
    public int HostPid { get; init; }
    public ulong HostStart { get; init; }

    /// <summary>A process in the instance's network namespace, and that namespace (as /proc names it).</summary>
    public int NetPid { get; init; }
    public string? NetNs { get; init; }

    /// <summary>Where the balancer reaches it (ADDRESS:PORT), once known.</summary>
    public string? Address { get; init; }

    /// <summary>The host end of its veth pair.</summary>
    public string? HostVeth { get; init; }

    public bool IsFleet => HostPid == 0 && Address is not null && NetNs is null;
}

/// <summary>What a target serves, written atomically after every change so that it is true after a crash at any
/// point: <see cref="Pending"/> is a new set being brought up (not serving unless the balancer says so; a later
/// release rolls it back), <see cref="Retiring"/> an old set being drained and stopped.</summary>
public sealed record TargetState
{
    public required string Target { get; init; }
    public required string Image { get; init; }
    public string? Serving { get; init; }
    public string? Previous { get; init; }
    public IReadOnlyList<ServerRecord> Servers { get; init; } = [];
    public string? Pending { get; init; }
    public IReadOnlyList<ServerRecord> PendingServers { get; init; } = [];
    public IReadOnlyList<ServerRecord> Retiring { get; init; } = [];
    public int BalancerPid { get; init; }
    public ulong BalancerStart { get; init; }

    /// <summary>The pid of the kiln that made the pending change.</summary>
    public int ChangedBy { get; init; }
    public int NextId { get; init; } = 1;
    public DateTimeOffset Updated { get; init; }
}

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.KebabCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(TargetState))]
[JsonSerializable(typeof(InstanceReady))]
internal sealed partial class ReleaseJsonContext : JsonSerializerContext;

/// <summary>What an instance host writes once its instance is up and checked.</summary>
internal sealed record InstanceReady
{
    public int HostPid { get; init; }
    public int NetPid { get; init; }
    public bool Passed { get; init; }
    public IReadOnlyList<string> Failures { get; init; } = [];
}

/// <summary>The folder of a target's state in the store: <c>kiln/release/TARGET/</c> with <c>state.json</c>, the
/// balancer's config, socket and pid file, and a folder per instance.</summary>
public sealed class TargetFolder
{
    private readonly KilnStore _store;

    public TargetFolder(KilnStore store, string target)
    {
        _store = store;
        Name = target;
        Dir = Path.Combine(ReleaseRoot(store), target);
    }

    public static string ReleaseRoot(KilnStore store) => Path.Combine(store.Root, "kiln", "release");

    public string Name { get; }
    public string Dir { get; }
    public string StatePath => Path.Combine(Dir, "state.json");
    public string LockPath => Path.Combine(Dir, "lock");
    public string InstanceDir(string id) => Path.Combine(Dir, "instances", id);

    public TargetState? Read()
    {
        try
        {
            return JsonSerializer.Deserialize(File.ReadAllBytes(StatePath), ReleaseJsonContext.Default.TargetState);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        catch (DirectoryNotFoundException)
        {
            return null;
        }
        catch (JsonException e)
        {
            throw ReleaseException.Failed($"{StatePath} is not a release state: {e.Message}", e);
        }
    }

    /// <summary>The store's image root that keeps what the target serves, may serve again or is bringing up
    /// (<c>kiln/roots/release-TARGET</c>): gc must not take an image from under a running instance, nor the previous
    /// digest a rollback needs, when the image's name has moved on.</summary>
    public string RootName => "release-" + Name;

    public async Task<TargetState> WriteAsync(TargetState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        state = state with { Updated = DateTimeOffset.UtcNow };
        Directory.CreateDirectory(Dir);
        var bytes = JsonSerializer.SerializeToUtf8Bytes(state, ReleaseJsonContext.Default.TargetState);
        // The root keeps what the old and the new state name while the state changes, then what the new one names: a
        // crash between the two writes leaves a digest kept too long, never one unkept.
        TargetState? before;
        try
        {
            before = Read();
        }
        catch (ReleaseException)
        {
            before = null; // an unreadable state is being replaced: it keeps nothing
        }
        await _store.Roots.SetAsync(RootName, Digests(state).Concat(before is null ? [] : Digests(before)), CancellationToken.None).ConfigureAwait(false);
        // Never cancelled: a state written half would be worse than a late one.
        await StoreFs.AtomicWriteAsync(_store.NewIngestPath(), StatePath, bytes, CancellationToken.None).ConfigureAwait(false);
        await _store.Roots.SetAsync(RootName, Digests(state), CancellationToken.None).ConfigureAwait(false);
        return state;
    }

    /// <summary>Removes the state and the root that kept its images.</summary>
    public async Task DeleteAsync()
    {
        File.Delete(StatePath);
        await _store.Roots.SetAsync(RootName, [], CancellationToken.None).ConfigureAwait(false);
    }

    private static IEnumerable<Digest> Digests(TargetState state) =>
        new[] { state.Serving, state.Previous, state.Pending }
            .Concat(state.Servers.Concat(state.PendingServers).Concat(state.Retiring).Select(s => s.Digest))
            .Select(d => Digest.TryParse(d, out var parsed) ? parsed : (Digest?)null)
            .OfType<Digest>();

    /// <summary>The exclusive right to change the target, or null while another kiln holds it. Released by the
    /// kernel when its holder dies, also by kill -9.</summary>
    internal IDisposable? TryLock()
    {
        Directory.CreateDirectory(Dir);
        return FileLock.TryAcquire(LockPath, exclusive: true);
    }
}

/// <summary>Processes by pid and start time: a pid the kernel gave to another process since is not ours.</summary>
internal static class ProcessIdentity
{
    /// <summary>The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or null when it is
    /// gone or a zombie.</summary>
    public static ulong? StartTime(int pid)
    {
        if (pid <= 0)
        {
            return null;
        }
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return fields[0] == "Z" ? null : ulong.Parse(fields[19], CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return null;
        }
    }

    public static bool Alive(int pid, ulong start) => pid > 0 && StartTime(pid) == start;

    public static string? NetNs(int pid)
    {
        try
        {
            return new FileInfo($"/proc/{pid}/ns/net").LinkTarget;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill")]
    private static extern int KillNative(int pid, int signal);

    /// <summary>Signals the process if it is still the one started at <paramref name="start"/>.</summary>
    public static void Signal(int pid, ulong start, int signal)
    {
        if (Alive(pid, start))
        {
            _ = KillNative(pid, signal);
        }
    }

    /// <summary>SIGTERM, then after <paramref name="grace"/> SIGKILL; returns once the process is gone.</summary>
    public static async Task StopAsync(int pid, ulong start, TimeSpan grace)
    {
        Signal(pid, start, 15);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (Alive(pid, start))
        {
            if (clock.Elapsed > grace)
            {
                Signal(pid, start, 9);
            }
            await Task.Delay(20).ConfigureAwait(false);
        }
    }
}
