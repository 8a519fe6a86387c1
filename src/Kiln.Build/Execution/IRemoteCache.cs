using Kiln.Build.Store;
using Kiln.Oci;

namespace Kiln.Build.Execution;

/// <summary>A step cache and test-result cache beyond the store (<c>--cache-from</c>, <c>--cache-to</c>): the build
/// asks it for what the store lacks and tells it what each step gave. A hit gives an <see cref="ImageState"/> whose
/// layers may not be in the store: they are fetched only when an image is written
/// (<see cref="FetchBlobsAsync"/>) and extracted only when something runs on them (<see cref="MaterializeAsync"/>).</summary>
public interface IRemoteCache
{
    /// <summary>The state cached for <paramref name="cacheKey"/> by the first source that has it, or null.</summary>
    Task<ImageState?> TryGetStepAsync(string cacheKey, CancellationToken cancellationToken = default);

    /// <summary>Notes a step's state (run or reused) to send to the cache target by <see cref="FlushAsync"/>.</summary>
    void RecordStep(string cacheKey, ImageState state);

    /// <summary>Puts every layer blob of <paramref name="layers"/> the store lacks into it.</summary>
    Task FetchBlobsAsync(KilnStore store, IReadOnlyList<Descriptor> layers, CancellationToken cancellationToken = default);

    /// <summary>Gives every layer of <paramref name="state"/> its blob and snapshot in the store, so that a step or a
    /// test can run on it.</summary>
    Task MaterializeAsync(KilnStore store, ImageState state, CancellationToken cancellationToken = default);

    /// <summary>A passing test result stored under <paramref name="key"/> (image, spec and phase), or null.</summary>
    Task<byte[]?> TryGetTestResultAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>Notes a passing test result (run or reused) to send to the cache target by <see cref="FlushAsync"/>.</summary>
    void RecordTestResult(string key, byte[] json);

    /// <summary>Sends what was recorded to the cache target (nothing without one). A failure is not thrown but kept
    /// in <see cref="RemoteCacheSummary.ExportError"/>: the images are built and named by then.</summary>
    Task FlushAsync(KilnStore store, CancellationToken cancellationToken = default);

    /// <summary>What the cache has done so far.</summary>
    RemoteCacheSummary Summary { get; }
}

/// <summary>Counts of a remote cache's work in one build.</summary>
public sealed record RemoteCacheSummary
{
    /// <summary>The repositories read (<c>--cache-from</c>, in order) and written (<c>--cache-to</c>).</summary>
    public IReadOnlyList<string> From { get; init; } = [];
    public string? To { get; init; }

    public int StepsFound { get; init; }
    public int TestResultsFound { get; init; }
    public int BlobsFetched { get; init; }
    public long BytesFetched { get; init; }
    public int EntriesPushed { get; init; }
    /// <summary>Entries the target already held as they are.</summary>
    public int EntriesPresent { get; init; }
    public int BlobsPushed { get; init; }
    public long BytesPushed { get; init; }
    /// <summary>Blobs the target had (HEAD) or linked from another repository (mount).</summary>
    public int BlobsSkipped { get; init; }

    /// <summary>Of <see cref="BlobsSkipped"/>, those linked from another repository (mount).</summary>
    public int BlobsMounted { get; init; }

    /// <summary>Sources left out after they failed (<c>REF: reason</c>): the build went on without them.</summary>
    public IReadOnlyList<string> Unavailable { get; init; } = [];

    /// <summary>Why sending to the target failed, or null; the build's images are named all the same.</summary>
    public string? ExportError { get; init; }
}
