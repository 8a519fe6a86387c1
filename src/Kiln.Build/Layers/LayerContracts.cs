using Kiln.Oci;

namespace Kiln.Build.Layers;

public enum Compression { Gzip, Zstd }

/// <summary>A packed layer: the digest of the uncompressed tar (diff ID) and of the compressed blob.</summary>
public sealed record PackedLayer(Digest DiffId, Digest Digest, long Size, string MediaType)
{
    /// <summary>Time spent hashing (SHA-256 of the tar and of the blob), inside packing: it runs on the writer
    /// thread while later chunks compress.</summary>
    public TimeSpan HashTime { get; init; }
}
