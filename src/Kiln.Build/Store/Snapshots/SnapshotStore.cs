using Kiln.Build.Store.Content;
using Kiln.Oci;

namespace Kiln.Build.Store.Snapshots;

/// <summary>Snapshots: extracted layers, one directory per layer in <c>kiln/snapshots/</c> named by its diffId, which
/// overlay mounts stack as lower dirs. A snapshot is prepared in a temp dir, made durable, and renamed into place: the
/// rename is the commit point, so a snapshot that is there is complete.</summary>
public sealed class SnapshotStore
{
    internal SnapshotStore(string snapshotsDir)
    {
        SnapshotsDir = snapshotsDir;
    }

    public string SnapshotsDir { get; }

    public string SnapshotPath(Digest diffId) => Path.Combine(SnapshotsDir, ContentStore.CheckDigest(diffId).Hex);

    /// <summary>Layers of this process whose files are final but not yet durable, by diffId: their snapshot is still the
    /// prepared dir (see <see cref="Execution.EarlyLayer"/>).</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<Digest, string> _prepared = new();

    /// <summary>Where this process reads the files of a layer: its snapshot, or the dir it is being prepared in while
    /// that is made durable (until <see cref="CommitSnapshot"/> moves it).</summary>
    public string SnapshotDirToRead(Digest diffId) => _prepared.TryGetValue(diffId, out var dir) ? dir : SnapshotPath(diffId);

    internal void ReadPreparedSnapshot(Digest diffId, string preparedDir) => _prepared[diffId] = Path.GetFullPath(preparedDir);

    internal void ForgetPreparedSnapshot(Digest diffId) => _prepared.TryRemove(diffId, out _);

    /// <summary>True when a complete snapshot exists (partial ones live only under kiln/tmp).</summary>
    public bool HasSnapshot(Digest diffId) => Directory.Exists(SnapshotPath(diffId));

    /// <summary>Moves a fully prepared directory (on the store's filesystem, e.g. from <see cref="KilnStore.CreateTempDir"/>)
    /// into place as the snapshot of <paramref name="diffId"/>. If one already exists, the prepared dir is deleted.</summary>
    /// <param name="synced">The dir's content was made durable with <see cref="SyncPreparedSnapshot"/> (e.g. while its layer was
    /// packed) and has not changed since: only the rename is left.</param>
    public void CommitSnapshot(string preparedDir, Digest diffId, bool synced = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(preparedDir);
        var target = SnapshotPath(diffId);
        var source = Path.GetFullPath(preparedDir);
        var info = new DirectoryInfo(source);
        if (!info.Exists || info.LinkTarget is not null)
        {
            throw new StoreException($"cannot commit snapshot {diffId.Short}: '{source}' is not a directory");
        }
        try
        {
            if (!Directory.Exists(target))
            {
                // Content must be on disk before the rename makes it visible as complete.
                if (!synced)
                {
                    SyncTree(source);
                }
                try
                {
                    Directory.Move(source, target);
                    Native.FsyncDirectory(SnapshotsDir);
                    return;
                }
                catch (IOException) when (Directory.Exists(target))
                {
                    // Lost a race with another committer of the same layer: theirs is as good as ours.
                }
            }
            StoreFs.DeleteTree(source);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw StoreException.Io($"committing snapshot {diffId} from '{source}' (it must be on the store's filesystem)", e);
        }
    }

    /// <summary>Makes a prepared snapshot dir's content durable, ahead of <see cref="CommitSnapshot"/> with
    /// <c>synced: true</c>.</summary>
    public static void SyncPreparedSnapshot(string preparedDir)
    {
        try
        {
            SyncTree(Path.GetFullPath(preparedDir));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw StoreException.Io($"syncing the snapshot prepared in '{preparedDir}'", e);
        }
    }

    // A small tree (an app-change copy step) is fsynced entry by entry: syncfs would also wait for every
    // other writer's dirty data on the filesystem. A large tree is flushed with one syncfs.
    private const int FsyncEachLimit = 64;

    private static void SyncTree(string root)
    {
        var entries = new List<string>();
        var pending = new Stack<string>();
        pending.Push(root);
        while (pending.Count > 0)
        {
            var dir = pending.Pop();
            entries.Add(dir);
            foreach (var info in new DirectoryInfo(dir).EnumerateFileSystemInfos())
            {
                if (entries.Count > FsyncEachLimit)
                {
                    Native.SyncFilesystem(root);
                    return;
                }
                var st = Kiln.Build.Native.LibC.Lstat(info.FullName);
                if (st.IsDirectory)
                {
                    pending.Push(info.FullName);
                }
                else if (st.IsRegularFile)
                {
                    entries.Add(info.FullName);
                }
                else
                {
                    // Symlinks, whiteouts, fifos: nothing to open and fsync; one syncfs covers them.
                    Native.SyncFilesystem(root);
                    return;
                }
            }
        }
        foreach (var path in entries)
        {
            Native.FsyncPath(path);
        }
    }

    // ---- store-wide operations (gc, repair) ----

    /// <summary>Deletes every snapshot not in <paramref name="keep"/> (under the exclusive store lock). Each is first
    /// renamed to <paramref name="doomedPath"/> (in kiln/tmp), so a crash mid-delete never leaves a half snapshot that
    /// looks complete.</summary>
    internal (int Removed, int Kept, long BytesFreed) Sweep(HashSet<Digest> keep, Func<Digest, string> doomedPath, CancellationToken ct)
    {
        int removed = 0, kept = 0;
        long bytes = 0;
        foreach (var dir in Directory.EnumerateFileSystemEntries(SnapshotsDir).ToList())
        {
            ct.ThrowIfCancellationRequested();
            if (!Digest.TryParse(Digest.Sha256Prefix + Path.GetFileName(dir), out var d))
            {
                continue;
            }
            if (keep.Contains(d))
            {
                kept++;
                continue;
            }
            bytes += StoreFs.TreeSize(dir);
            var doomed = doomedPath(d);
            Directory.Move(dir, doomed);
            StoreFs.DeleteTree(doomed);
            removed++;
        }
        if (removed > 0)
        {
            Native.FsyncDirectory(SnapshotsDir);
        }
        return (removed, kept, bytes);
    }

    /// <summary>Removes what stands where a snapshot should but is not a real directory (a file, a link), under the
    /// exclusive store lock.</summary>
    internal int RemoveBroken()
    {
        int removed = 0;
        foreach (var entry in Directory.EnumerateFileSystemEntries(SnapshotsDir).ToList())
        {
            var info = new DirectoryInfo(entry);
            bool isRealDirectory = info.Exists && info.LinkTarget is null;
            if (isRealDirectory)
            {
                continue;
            }
            StoreFs.DeleteTree(entry);
            removed++;
        }
        return removed;
    }
}
