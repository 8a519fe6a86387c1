using System.Collections.Concurrent;
using Kiln.Build.Layers;
using Kiln.Build.Store.Content;
using Kiln.Oci;

namespace Kiln.Build.Store.Snapshots;

/// <summary>Snapshots: extracted layers, one directory per layer in <c>kiln/snapshots/</c> named by its diffId, which
/// overlay mounts stack as lower dirs. A snapshot is prepared in a temp dir, made durable, and renamed into place: the
/// rename is the commit point, so a snapshot that is there is complete.</summary>
/// <remarks>A snapshot is derived from its layer's blob, which the content store holds checked: an image that was pulled
/// or imported has blobs and no snapshots until something reads its files (<see cref="EnsureAsync"/>).</remarks>
public sealed class SnapshotStore
{
    private readonly ContentStore _content;
    private readonly Func<string, string> _createTempDir;
    private readonly Action<string> _deleteTempDir;

    /// <summary>Extractions in flight in this process, by diffId: a build and its tests asking for one layer extract it once.</summary>
    private readonly ConcurrentDictionary<Digest, Task> _extracting = new();

    internal SnapshotStore(string snapshotsDir, ContentStore content, Func<string, string> createTempDir, Action<string> deleteTempDir)
    {
        SnapshotsDir = snapshotsDir;
        _content = content;
        _createTempDir = createTempDir;
        _deleteTempDir = deleteTempDir;
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

    // ---- extraction on first use ----

    /// <summary>Gives every layer of <paramref name="state"/> its snapshot, extracting from its blob in the store those
    /// that have none (nor a prepared dir of this process), so that a sandbox, a test or an exporter can read its files.
    /// Idempotent. The caller holds the store lock (shared), as for any write. Each extraction goes to a dir in kiln/tmp,
    /// is checked against the layer's diffId, made durable and renamed into place: a crash leaves only a temp dir, which
    /// the next start removes; another process extracting the same layer at once loses nothing (the first rename wins).</summary>
    /// <exception cref="StoreException">A blob is missing, or a layer cannot be extracted or unpacks to another diffId.</exception>
    public async Task EnsureAsync(ImageState state, ExtractionOptions? extraction = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(state);
        state.CheckLayersMatchDiffIds();
        for (int i = 0; i < state.Layers.Count; i++)
        {
            await EnsureLayerAsync(state.Layers[i], state.Config.RootFs.DiffIds[i], extraction ?? ExtractionOptions.Default, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Whether <paramref name="diffId"/>'s files can be read now: a complete snapshot, or a dir of this process
    /// that is being made durable.</summary>
    private bool IsReadable(Digest diffId) => _prepared.ContainsKey(diffId) || HasSnapshot(diffId);

    private async Task EnsureLayerAsync(Descriptor layer, Digest diffId, ExtractionOptions extraction, CancellationToken ct)
    {
        while (!IsReadable(diffId))
        {
            var mine = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var running = _extracting.GetOrAdd(diffId, mine.Task);
            if (running != mine.Task)
            {
                try
                {
                    await running.WaitAsync(ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    // The other caller was cancelled, not this one: look again, and extract it here if still missing.
                }
                continue;
            }
            try
            {
                if (!IsReadable(diffId))
                {
                    await ExtractAsync(layer, diffId, extraction, ct).ConfigureAwait(false);
                }
                mine.SetResult();
            }
            catch (Exception e)
            {
                if (e is OperationCanceledException oce)
                {
                    mine.SetCanceled(oce.CancellationToken);
                }
                else
                {
                    mine.SetException(e);
                }
                throw;
            }
            finally
            {
                _extracting.TryRemove(new KeyValuePair<Digest, Task>(diffId, mine.Task));
            }
        }
    }

    private async Task ExtractAsync(Descriptor layer, Digest diffId, ExtractionOptions extraction, CancellationToken ct)
    {
        if (!_content.HasBlob(layer.Digest))
        {
            throw StoreException.CannotExtract(layer.Digest, "its blob is not in the store (run `kiln verify`, then pull or build the image again)");
        }
        var work = _createTempDir("extract");
        try
        {
            var target = Path.Combine(work, "layer");
            Digest actual;
            // The blob was checked against its digest when it was written: it is read once, to unpack it.
            var blob = _content.OpenBlob(layer.Digest);
            await using (blob.ConfigureAwait(false))
            {
                try
                {
                    actual = await LayerExtractor.ExtractAsync(blob, layer.MediaType, target, extraction, ct).ConfigureAwait(false);
                }
                catch (LayerException e)
                {
                    throw StoreException.CannotExtract(layer.Digest, e.Message, e);
                }
            }
            if (actual != diffId)
            {
                throw StoreException.CannotExtract(layer.Digest, $"it unpacks to {actual}, but the image's config says {diffId}");
            }
            CommitSnapshot(target, diffId);
        }
        finally
        {
            _deleteTempDir(work);
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
