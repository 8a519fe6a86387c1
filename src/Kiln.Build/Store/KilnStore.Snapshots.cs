using Kiln.Build.Store.Content;
using Kiln.Oci;

namespace Kiln.Build.Store;

public sealed partial class KilnStore
{
    // ---- snapshots: extracted layers, named by diffId; the rename into snapshots/ is the commit point ----

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

    /// <summary>Moves a fully prepared directory (on the store's filesystem, e.g. from <see cref="CreateTempDir"/>)
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

    // ---- step cache: kiln/steps/KEY.json → ImageState ----

    /// <summary>The cached state after the step with this key, or null if absent, unreadable, or if any of its
    /// layer blobs or snapshots is missing.</summary>
    public ImageState? TryGetStep(string cacheKey)
    {
        var path = StepPath(cacheKey);
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        var state = StepEntryJson.Read(bytes);
        if (state is null || !IsComplete(state))
        {
            return null;
        }
        return state;
    }

    public async Task PutStepAsync(string cacheKey, ImageState state, CancellationToken ct = default)
    {
        var path = StepPath(cacheKey);
        ArgumentNullException.ThrowIfNull(state);
        state.CheckLayersMatchDiffIds();
        var bytes = StepEntryJson.Write(state);
        try
        {
            await StoreFs.AtomicWriteAsync(NewIngestPath(), path, bytes, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw StoreException.Io($"writing step cache entry '{path}'", e);
        }
    }

    public static bool IsValidCacheKey(string? key)
    {
        if (key is null || key.Length != 64)
        {
            return false;
        }
        foreach (char c in key)
        {
            if (!char.IsAsciiDigit(c) && c is not (>= 'a' and <= 'f'))
            {
                return false;
            }
        }
        return true;
    }

    private string StepPath(string cacheKey) =>
        IsValidCacheKey(cacheKey) ? Path.Combine(_stepsDir, cacheKey + ".json") : throw StoreException.InvalidCacheKey(cacheKey ?? "");

    private bool IsComplete(ImageState state) =>
        state.Layers.All(l => Content.HasBlob(l.Digest)) && state.Config.RootFs.DiffIds.All(HasSnapshot);

    /// <summary>All step cache entries (key, parsed state or null if unreadable).</summary>
    private IEnumerable<(string Key, string Path, ImageState? State)> EnumerateSteps()
    {
        foreach (var file in Directory.EnumerateFiles(_stepsDir, "*.json"))
        {
            var key = Path.GetFileNameWithoutExtension(file);
            if (!IsValidCacheKey(key))
            {
                continue;
            }
            ImageState? state;
            try
            {
                state = StepEntryJson.Read(File.ReadAllBytes(file));
            }
            catch (FileNotFoundException)
            {
                continue;
            }
            yield return (key, file, state);
        }
    }
}
