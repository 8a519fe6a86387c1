using Kiln.Oci;

namespace Kiln.Build.Layers;

public enum Compression { Gzip, Zstd }

/// <summary>A packed layer: the digest of the uncompressed tar (diff ID) and of the compressed blob.</summary>
public sealed record PackedLayer(Digest DiffId, Digest Digest, long Size, string MediaType);

/// <summary>A destination that hashes, with SHA-256, what is written to it (the store's blob writer): a packer takes the
/// blob's digest from it rather than hash the same bytes a second time.</summary>
public interface ISha256Destination
{
    /// <summary>The SHA-256 of everything written so far.</summary>
    byte[] Sha256SoFar();
}

/// <summary>Where packing spent its time, for traces (kept out of <see cref="PackedLayer"/>, a value).</summary>
public sealed class PackTimings
{
    /// <summary>Busy time of the SHA-256 hashes of the tar and (unless the destination hashes it, see
    /// <see cref="ISha256Destination"/>) of the blob; they run inside packing, on the producer's and the writer's
    /// threads, while chunks compress.</summary>
    public TimeSpan Hash { get; internal set; }
}
