using Kiln.Build.Planning;
using Kiln.Build.Store;
using Kiln.Oci;

namespace Kiln.Build.Execution;

/// <summary>Makes the minimized form of an image whose definition has <c>minimize:</c>, once the image passed its tests
/// (Kiln.Build.Minimize). The executor tests the result with the same gate before it gives it the name.</summary>
public interface IImageMinimizer
{
    Task<MinimizeOutcome> MinimizeAsync(ImagePlan image, Descriptor manifest, ImageState full, CancellationToken ct);

    /// <summary>The minimized image's retest is done: the minimizer records its outcome.</summary>
    Task RetestedAsync(MinimizeOutcome outcome, GateResult retest, CancellationToken ct);
}

/// <summary>A minimized image and what it cost the full one; <see cref="Record"/> is the minimizer's own.</summary>
public sealed record MinimizeOutcome(ImageState State, object Record)
{
    public bool Cached { get; init; }
    public long BytesBefore { get; init; }
    public long BytesAfter { get; init; }
    public int FilesBefore { get; init; }
    public int FilesAfter { get; init; }
}
