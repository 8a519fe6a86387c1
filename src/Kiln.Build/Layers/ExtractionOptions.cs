namespace Kiln.Build.Layers;

/// <summary>Limits for <see cref="LayerExtractor"/>: a layer is input from a stranger, so its size and its number of
/// entries are bounded before it is read.</summary>
/// <remarks>Device nodes: character and block devices are extracted as they are (a base image's dev/console, a
/// block device in a foreign layer), and never open a host device, because every sandbox mounts the image's layers
/// <c>nodev</c> and gives /dev a tmpfs of its own; kiln itself reads only regular files of an image. A character
/// device 0:0 is always refused: in a snapshot used as an overlay lower dir it would be a whiteout, hiding what
/// the layers below hold at its path rather than being a device, and no other form of it keeps the image's
/// meaning (OCI layers delete files with <c>.wh.</c> entries). FIFOs are kept.</remarks>
public sealed record ExtractionOptions
{
    /// <summary>The most uncompressed bytes (the tar stream) a layer may hold; a larger one is refused as it is
    /// read, so a compression bomb stops here with bounded memory.</summary>
    public long MaxUncompressedBytes { get; init; } = 64L << 30;

    /// <summary>The most tar entries a layer may hold (headers included: PAX and GNU long names count too).</summary>
    public long MaxEntries { get; init; } = 4_000_000;

    public static ExtractionOptions Default { get; } = new();
}
