using System.Globalization;
using Kiln.Build.Store.Content;
using Kiln.Build.Store.Names;
using Kiln.Build.Store.Snapshots;
using Kiln.Build.Store.Steps;
using Kiln.Oci;

namespace Kiln.Build.Store;

/// <summary>The local store: an OCI image layout (<c>oci-layout</c>, <c>index.json</c>, <c>blobs/sha256/</c>)
/// plus <c>kiln/</c> for what a layout has no place for (snapshots, step cache, package caches, ingest,
/// temp dirs, locks). Blobs and snapshots are written aside and renamed into place, so a crash at any
/// instant leaves a consistent store.</summary>
/// <remarks>Callers that write blobs and later tag or cache them hold <see cref="AcquireLock"/> (shared) across
/// the whole sequence so garbage collection (exclusive) cannot remove what they have not yet referenced.</remarks>
public sealed partial class KilnStore : IDisposable
{
    private readonly string _ingestDir;
    private readonly string _tmpDir;
    private readonly string _scratchDir;
    private readonly string _kilnDir;
    private readonly string _procsDir;
    private readonly int _pid = Environment.ProcessId;
    private FileLock? _liveness;

    private KilnStore(string root)
    {
        Root = root;
        _kilnDir = Path.Combine(root, "kiln");
        AptArchivesDir = Path.Combine(_kilnDir, "cache", "apt", "archives");
        AptListsDir = Path.Combine(_kilnDir, "cache", "apt", "lists");
        AptTwinsDir = Path.Combine(_kilnDir, "cache", "apt", "plain");
        _ingestDir = Path.Combine(_kilnDir, "ingest");
        _tmpDir = Path.Combine(_kilnDir, "tmp");
        _scratchDir = Path.Combine(_kilnDir, "scratch");
        _procsDir = Path.Combine(_kilnDir, "procs");
        Content = new ContentStore(Path.Combine(root, "blobs", "sha256"), NewIngestPath);
        Names = new ImageNames(root, _kilnDir, Content, NewIngestPath);
        Snapshots = new SnapshotStore(Path.Combine(_kilnDir, "snapshots"), Content, CreateTempDir, DeleteTempDir);
        StepCache = new StepCache(Path.Combine(_kilnDir, "steps"), Content, Snapshots, NewIngestPath);
    }

    public string Root { get; }

    /// <summary>Blobs (manifests, configs, layers) by digest, and the ingest they are written through.</summary>
    public ContentStore Content { get; }

    /// <summary>Image names (tags) in the layout's <c>index.json</c>.</summary>
    public ImageNames Names { get; }

    /// <summary>Extracted layers by diffId: the lower dirs of every sandbox.</summary>
    public SnapshotStore Snapshots { get; }

    /// <summary>Step cache entries: a step's cache key to the image state after it.</summary>
    public StepCache StepCache { get; }

    public string AptArchivesDir { get; }
    public string AptListsDir { get; }

    /// <summary>Uncompressed copies of the downloads in <see cref="AptArchivesDir"/> that package steps install
    /// instead (see PackageTwins).</summary>
    public string AptTwinsDir { get; }
    public string TempRoot => _tmpDir;

    private string LayoutPath => Path.Combine(Root, "oci-layout");
    private string StoreLockPath => Path.Combine(_kilnDir, "lock");
    private string ProcsLockPath => Path.Combine(_kilnDir, "procs.lock");

    /// <summary>Opens the store at <paramref name="root"/>, creating the layout if missing, and removes
    /// ingest and temp entries left by processes that have died.</summary>
    public static KilnStore Open(string root)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        string full;
        try
        {
            full = Path.GetFullPath(root);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            throw StoreException.Unusable(root, "not a valid path", e);
        }
        if (File.Exists(full))
        {
            throw StoreException.Unusable(full, "it is a file, not a directory");
        }
        var store = new KilnStore(full);
        try
        {
            store.Initialize();
            return store;
        }
        catch (StoreException)
        {
            store.Dispose();
            throw;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            store.Dispose();
            throw StoreException.Unusable(full, e.Message, e);
        }
    }

    private void Initialize()
    {
        // A directory holding only what an interrupted Open creates is finished, anything else is refused.
        if (Directory.Exists(Root) && !File.Exists(LayoutPath)
            && Directory.EnumerateFileSystemEntries(Root).Any(e => Path.GetFileName(e) is not ("kiln" or "blobs" or "index.json")))
        {
            throw StoreException.NotAStore(Root);
        }
        foreach (var dir in new[] { Content.BlobsDir, Snapshots.SnapshotsDir, StepCache.StepsDir, AptArchivesDir, AptListsDir, _ingestDir, _tmpDir, _scratchDir, _procsDir })
        {
            Directory.CreateDirectory(dir);
        }
        // Image trees live here as they are: device nodes and setuid files of foreign images included. Only root may
        // reach them from the host; sandboxes see them through their own (nodev) mounts.
        foreach (var dir in new[] { Snapshots.SnapshotsDir, _tmpDir, _scratchDir })
        {
            File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        // Every step's tree, snapshot and extraction starts as a dir in kiln/tmp. Marked as the top of directory
        // hierarchies, ext4 places each such dir in a block group with room, instead of beside the store, whose
        // group may be full: creating a file there was measured at 400-700 us against 20 us.
        Native.TryMarkTopDir(_tmpDir);
        if (File.Exists(LayoutPath))
        {
            CheckLayoutFile();
        }
        else
        {
            AtomicWrite(LayoutPath, OciJson.Serialize(new OciLayoutFile()));
        }
        Names.EnsureIndex(AtomicWrite);
        CleanDeadLeftovers();
    }

    private void CheckLayoutFile()
    {
        string version;
        try
        {
            version = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(LayoutPath))
                .RootElement.GetProperty("imageLayoutVersion").GetString() ?? "";
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw StoreException.Unusable(Root, "'oci-layout' is not valid JSON with an imageLayoutVersion", e);
        }
        if (!version.StartsWith("1.", StringComparison.Ordinal))
        {
            throw StoreException.Unusable(Root, $"unsupported OCI layout version '{version}'");
        }
    }

    private void AtomicWrite(string target, byte[] bytes) =>
        StoreFs.AtomicWriteAsync(NewIngestPath(), target, bytes, CancellationToken.None).GetAwaiter().GetResult();

    /// <summary>A fresh path in the ingest area, named so a later Open can tell whether its owner is alive.</summary>
    internal string NewIngestPath() => Path.Combine(_ingestDir, $"{_pid}-{RandomSuffix()}");

    /// <summary>64 random bits. From Guid.NewGuid (the kernel's random source) rather than RandomNumberGenerator,
    /// which on Linux loads OpenSSL: about 2 ms for a build that otherwise never needs it (see Sha256Hasher).</summary>
    private static string RandomSuffix() => Guid.NewGuid().ToString("N")[..16];

    // ---- records the stages keep about images ----

    /// <summary>The folder of Testing's test results (see <c>Testing/TestResultStore</c>).</summary>
    internal const string TestResultsFolder = "tests";

    /// <summary>The folder of Exporters' output stamps (see <c>Exporters/OutputStamps</c>).</summary>
    internal const string OutputStampsFolder = "outputs";

    /// <summary>The folders of Minimize's reports and access recordings (see <c>Minimize/MinimizeReport</c>).</summary>
    internal const string MinimizeReportsFolder = "minimize", MinimizeRecordingsFolder = "recordings";
    /// <summary>Promotion's append-only log (see <c>Promotion/PromotionLog</c>); history, so gc keeps it whole.</summary>
    internal const string PromotionLogFile = "promotions.jsonl";

    /// <summary>A file of a stage's own directly under <c>kiln/</c>.</summary>
    internal string KilnFile(string name) => Path.Combine(_kilnDir, name);

    /// <summary>The records a stage keeps about images in <c>kiln/FOLDER/</c>; gc drops those of images that are gone.</summary>
    internal ImageRecords ImageRecords(string folder) => new(Path.Combine(_kilnDir, folder), NewIngestPath);

    /// <summary>The folder of Services' tested-pair records (see <c>Services/PairStore</c>).</summary>
    internal const string PairsFolder = "pairs";

    /// <summary>Blobs kept by name (<c>kiln/pins/</c>): gc keeps them as it keeps what tags name.</summary>
    public BlobPins Pins => new(Path.Combine(_kilnDir, "pins"), NewIngestPath);

    /// <summary>Images kept by name without a tag (<c>kiln/roots/</c>): gc keeps them as it keeps tagged images.</summary>
    public ImageRoots Roots => new(Path.Combine(_kilnDir, "roots"), NewIngestPath);

    /// <summary>Which repository of a registry each blob was last pushed to or pulled from (<c>kiln/registry-blobs/</c>),
    /// for cross-repository mounts.</summary>
    public RegistryBlobs RegistryBlobs => new(Path.Combine(_kilnDir, "registry-blobs"), NewIngestPath);

    /// <summary>Takes the store lock: shared for builds and other writers, exclusive for garbage collection.
    /// Locks of separate calls conflict even inside one process.</summary>
    public IDisposable AcquireLock(bool exclusive, CancellationToken ct = default) =>
        FileLock.Acquire(StoreLockPath, exclusive, ct);

    /// <summary>Takes the shared apt cache (package lists and downloads, bind-mounted into every packages step) for
    /// one package step. apt locks these folders itself and fails at once, rather than wait, when another build's
    /// apt holds them; and an <c>apt-get update</c> replaces lists another build may be reading. Package steps of
    /// concurrent builds therefore take turns.</summary>
    public async Task<IDisposable> AcquireAptCacheAsync(CancellationToken ct = default) =>
        await FileLock.AcquireAsync(Path.Combine(_kilnDir, "cache", "apt.lock"), exclusive: true, ct).ConfigureAwait(false);

    // ---- temp dirs ----

    /// <summary>Creates a fresh directory under <c>kiln/tmp</c> named <c>PID-purpose-RANDOM</c>.</summary>
    public string CreateTempDir(string purpose) => NewTempDir(_tmpDir, purpose);

    private string NewTempDir(string parent, string purpose)
    {
        ArgumentException.ThrowIfNullOrEmpty(purpose);
        foreach (char c in purpose)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            {
                throw new ArgumentException($"temp dir purpose '{purpose}' may hold only letters, digits, '-', '_' and '.'", nameof(purpose));
            }
        }
        var path = Path.Combine(parent, $"{_pid}-{purpose}-{RandomSuffix()}");
        Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>Like <see cref="CreateTempDir"/>, with a private tmpfs of at most <paramref name="bytes"/> mounted on
    /// it: a step's writes then never wait on the disk's journal. Null when the tmpfs cannot be mounted (the caller
    /// works on disk instead); <see cref="DeleteTempDir"/> unmounts it.</summary>
    /// <remarks>Made in <c>kiln/scratch</c>, a plain dir, not in <c>kiln/tmp</c>: where a mount point lies on disk does
    /// not matter, and a dir made in kiln/tmp (marked +T) makes ext4's Orlov allocator search the block groups for
    /// one with room, often reading that group's bitmap from disk. mkdir there took 40 us (median), 106 us (mean) and
    /// 380 us (97th percentile) on the reference machine, against 7, 8 and 16 us in a plain dir.</remarks>
    public string? CreateMemoryTempDir(string purpose, long bytes)
    {
        var path = NewTempDir(_scratchDir, purpose);
        if (Native.TryMountTmpfs(path, bytes) is null)
        {
            return path;
        }
        DeleteTempDir(path);
        return null;
    }

    /// <summary>Bytes still free in a temp dir made by <see cref="CreateMemoryTempDir"/>, and its size.</summary>
    public static (long Free, long Total) TempSpace(string path) => Native.FreeSpace(path);

    /// <summary>Deletes a directory made by <see cref="CreateTempDir"/> or <see cref="CreateMemoryTempDir"/> (or
    /// anything under <c>kiln/tmp</c> or <c>kiln/scratch</c>), including read-only and mode-000 dirs and whiteout devices; symbolic links
    /// are removed, never followed.</summary>
    public void DeleteTempDir(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var full = Path.GetFullPath(path);
        if (!IsStrictlyUnder(full, _tmpDir) && !IsStrictlyUnder(full, _scratchDir))
        {
            throw StoreException.OutsideTemp(path, _tmpDir, _scratchDir);
        }
        try
        {
            DetachScratch(full);
            StoreFs.DeleteTree(full);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw StoreException.Io($"deleting '{full}'", e);
        }
    }

    /// <summary>Unmounts the tmpfs of a memory temp dir (only a tmpfs on the entry itself: nothing else is ever
    /// mounted under kiln/tmp or kiln/scratch on the host, and deleting never crosses a mount point).</summary>
    private static void DetachScratch(string path)
    {
        if (Directory.Exists(path) && new DirectoryInfo(path).LinkTarget is null
            && Kiln.Build.Native.LibC.Lstat(path).Device != Kiln.Build.Native.LibC.Lstat(Path.GetDirectoryName(path)!).Device)
        {
            Native.Detach(path);
        }
    }

    private static bool IsStrictlyUnder(string full, string dir)
    {
        var prefix = dir.EndsWith('/') ? dir : dir + "/";
        return full.StartsWith(prefix, StringComparison.Ordinal) && full.Length > prefix.Length
            && !full.AsSpan(prefix.Length).Contains("/..", StringComparison.Ordinal);
    }

    // ---- dead-process cleanup ----

    /// <summary>Each open store holds a shared flock on <c>kiln/procs/PID.lock</c>. An entry named <c>PID-…</c> in
    /// ingest, tmp or scratch is dead when that lock can be taken exclusively (its owner is gone, even if the pid was reused),
    /// or, with no lock file, when no process has that pid. Registration and cleanup are serialized by
    /// <c>kiln/procs.lock</c>, so a lock file is never unlinked while a new owner is taking it.</summary>
    private void CleanDeadLeftovers()
    {
        using var procs = FileLock.Acquire(ProcsLockPath, exclusive: true, CancellationToken.None);
        _liveness = FileLock.Acquire(ProcLockPath(_pid), exclusive: false, CancellationToken.None);

        var isDead = new Dictionary<int, bool>();
        var held = new List<FileLock>();
        bool Dead(int pid)
        {
            if (!isDead.TryGetValue(pid, out bool dead))
            {
                var lockPath = ProcLockPath(pid);
                if (File.Exists(lockPath))
                {
                    // Keep the lock until done so the pid's entries cannot gain a live owner meanwhile.
                    var l = FileLock.TryAcquire(lockPath, exclusive: true);
                    dead = l is not null;
                    if (l is not null)
                    {
                        held.Add(l);
                    }
                }
                else
                {
                    dead = !Native.ProcessExists(pid);
                }
                isDead[pid] = dead;
            }
            return dead;
        }

        try
        {
            foreach (var dir in new[] { _ingestDir, _tmpDir, _scratchDir })
            {
                foreach (var entry in Directory.EnumerateFileSystemEntries(dir))
                {
                    if (TryParseOwner(Path.GetFileName(entry), out int pid) && pid != _pid && Dead(pid))
                    {
                        try
                        {
                            DetachScratch(entry);
                            StoreFs.DeleteTree(entry);
                        }
                        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                        {
                            // Leftovers are harmless; the next Open retries.
                        }
                    }
                }
            }
            // Lock files of owners that are gone, whether or not they left entries.
            foreach (var file in Directory.EnumerateFiles(_procsDir, "*.lock"))
            {
                var name = Path.GetFileNameWithoutExtension(file);
                if (int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out int pid) && pid != _pid && Dead(pid))
                {
                    StoreFs.TryDeleteFile(file);
                }
            }
        }
        finally
        {
            foreach (var l in held)
            {
                l.Dispose();
            }
        }
    }

    private string ProcLockPath(int pid) => Path.Combine(_procsDir, pid.ToString(CultureInfo.InvariantCulture) + ".lock");

    private static bool TryParseOwner(string name, out int pid)
    {
        int dash = name.IndexOf('-');
        pid = 0;
        return dash > 0 && int.TryParse(name.AsSpan(0, dash), NumberStyles.None, CultureInfo.InvariantCulture, out pid) && pid > 0;
    }

    public void Dispose()
    {
        _liveness?.Dispose();
        _liveness = null;
    }
}
