using Kiln.Build.Store.Content;
using Kiln.Oci;

namespace Kiln.Build.Store;

public sealed partial class KilnStore
{
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
        state.Layers.All(l => Content.HasBlob(l.Digest)) && state.Config.RootFs.DiffIds.All(Snapshots.HasSnapshot);

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
