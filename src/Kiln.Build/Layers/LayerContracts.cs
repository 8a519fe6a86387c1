using Kiln.Oci;

namespace Kiln.Build.Layers;

public enum Compression { Gzip, Zstd }

/// <summary>A packed layer: the digest of the uncompressed tar (diff ID) and of the compressed blob.</summary>
public sealed record PackedLayer(Digest DiffId, Digest Digest, long Size, string MediaType);
