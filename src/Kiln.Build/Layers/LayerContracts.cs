using Kiln.Oci;

namespace Kiln.Build.Layers;

public enum Compression { Gzip, Zstd }

/// <summary>A packed layer: the digest of the uncompressed tar (diff ID) and of the compressed blob.</summary>
public sealed record PackedLayer(Digest DiffId, Digest Digest, long Size, string MediaType);

/// <summary>Where packing spent its time, for traces (kept out of <see cref="PackedLayer"/>, a value).</summary>
public sealed class PackTimings
{
    /// <summary>Busy time of both SHA-256 hashes (tar and blob); they run inside packing, on the producer's and
    /// the writer's threads, while chunks compress.</summary>
    public TimeSpan Hash { get; internal set; }
}
