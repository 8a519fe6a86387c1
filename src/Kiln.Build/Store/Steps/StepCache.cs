using Kiln.Build.Store.Content;
using Kiln.Build.Store.Snapshots;

namespace Kiln.Build.Store.Steps;

/// <summary>The step cache: <c>kiln/steps/KEY.json</c> maps a step's cache key to the image state after it (see
/// <see cref="StepEntryJson"/>). An entry counts only while every layer blob and snapshot it names is in the store, so
/// a step whose results were collected or repaired away simply runs again. An entry put with <c>unpackedOnUse</c> (a
/// step a remote cache gave, whose layers were fetched but nothing read yet) needs only the blobs: its layers are
/// extracted when something first reads them (<see cref="SnapshotStore.EnsureAsync"/>), as a pulled image's are.</summary>
public sealed class StepCache
{
    internal string StepsDir { get; }
    private readonly ContentStore _content;
    private readonly SnapshotStore _snapshots;
    private readonly Func<string> _newIngestPath;

    internal StepCache(string stepsDir, ContentStore content, SnapshotStore snapshots, Func<string> newIngestPath)
    {
        StepsDir = stepsDir;
        _content = content;
        _snapshots = snapshots;
        _newIngestPath = newIngestPath;
    }

    /// <summary>The cached state after the step with this key, or null if absent, unreadable, or if any of its
    /// layer blobs or snapshots is missing.</summary>
    public ImageState? TryGet(string cacheKey)
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
        var state = StepEntryJson.Read(bytes, out bool unpackedOnUse);
        if (state is null || !IsComplete(state, unpackedOnUse))
        {
            return null;
        }
        return state;
    }

    /// <param name="unpackedOnUse">The entry counts while its blobs are in the store, extracted or not.</param>
    public async Task PutAsync(string cacheKey, ImageState state, CancellationToken ct = default, bool unpackedOnUse = false)
    {
        var path = StepPath(cacheKey);
        ArgumentNullException.ThrowIfNull(state);
        state.CheckLayersMatchDiffIds();
        var bytes = StepEntryJson.Write(state, unpackedOnUse);
        try
        {
            await StoreFs.AtomicWriteAsync(_newIngestPath(), path, bytes, ct).ConfigureAwait(false);
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
        IsValidCacheKey(cacheKey) ? Path.Combine(StepsDir, cacheKey + ".json") : throw StoreException.InvalidCacheKey(cacheKey ?? "");

    private bool IsComplete(ImageState state, bool unpackedOnUse) =>
        state.Layers.All(l => _content.HasBlob(l.Digest)) && (unpackedOnUse || state.Config.RootFs.DiffIds.All(_snapshots.HasSnapshot));

    // ---- store-wide operations (gc, repair) ----

    /// <summary>Deletes the entries for which <paramref name="drop"/> holds (its argument is null for an entry that does
    /// not parse) and hands every other entry's state to <paramref name="kept"/>; under the exclusive store lock.
    /// With <paramref name="bestEffort"/>, an entry that cannot be deleted is skipped rather than fatal.</summary>
    internal int RemoveWhere(Func<ImageState?, bool> drop, Action<ImageState> kept, bool bestEffort, CancellationToken ct) =>
        RemoveWhere((state, _) => drop(state), kept, bestEffort, ct);

    private int RemoveWhere(Func<ImageState?, bool, bool> drop, Action<ImageState> kept, bool bestEffort, CancellationToken ct)
    {
        int removed = 0;
        foreach (var (_, path, state, unpackedOnUse) in EnumerateSteps().ToList())
        {
            ct.ThrowIfCancellationRequested();
            if (!drop(state, unpackedOnUse))
            {
                kept(state!);
                continue;
            }
            if (bestEffort)
            {
                StoreFs.TryDeleteFile(path);
            }
            else
            {
                File.Delete(path);
            }
            removed++;
        }
        if (removed > 0)
        {
            Native.FsyncDirectory(StepsDir);
        }
        return removed;
    }

    /// <summary>Drops every entry that does not parse or needs a blob or snapshot that is not in the store.</summary>
    internal int RemoveIncomplete(CancellationToken ct) =>
        RemoveWhere((state, unpackedOnUse) => state is null || !IsComplete(state, unpackedOnUse), _ => { }, bestEffort: true, ct);

    /// <summary>All step cache entries (key, parsed state or null if unreadable).</summary>
    private IEnumerable<(string Key, string Path, ImageState? State, bool UnpackedOnUse)> EnumerateSteps()
    {
        foreach (var file in Directory.EnumerateFiles(StepsDir, "*.json"))
        {
            var key = Path.GetFileNameWithoutExtension(file);
            if (!IsValidCacheKey(key))
            {
                continue;
            }
            ImageState? state;
            bool unpackedOnUse;
            try
            {
                state = StepEntryJson.Read(File.ReadAllBytes(file), out unpackedOnUse);
            }
            catch (FileNotFoundException)
            {
                continue;
            }
            yield return (key, file, state, unpackedOnUse);
        }
    }
}
