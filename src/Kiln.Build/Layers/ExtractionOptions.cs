namespace Kiln.Build.Layers;

/// <summary>Limits and policy for <see cref="LayerExtractor"/>: a layer is input from a stranger, so its size, its
/// number of entries and the kinds of file it may create are bounded before it is read.</summary>
/// <remarks>Device policy: a layer is data, and the sandbox gives every step its own minimal /dev, so an image
/// never needs device nodes. A character device 0:0 is always refused, because overlayfs would read it as a
/// whiteout (OCI layers express deletions with <c>.wh.</c> entries only). Other character and block devices are
/// kept by <see cref="Default"/> (layers Kiln packed itself round-trip) and refused by <see cref="Imported"/>,
/// which builds use for layers that come from outside (<c>from: oci:</c>): a block device in a base image would
/// hand a host disk to whoever runs it. FIFOs are always kept.</remarks>
public sealed record ExtractionOptions
{
    /// <summary>The most uncompressed bytes (the tar stream) a layer may hold; a larger one is refused as it is
    /// read, so a compression bomb stops here with bounded memory.</summary>
    public long MaxUncompressedBytes { get; init; } = 64L << 30;

    /// <summary>The most tar entries a layer may hold (headers included: PAX and GNU long names count too).</summary>
    public long MaxEntries { get; init; } = 4_000_000;

    /// <summary>Whether character and block devices (other than 0:0, which is never allowed) are created.</summary>
    public bool AllowDevices { get; init; } = true;

    /// <summary>For layers Kiln made or trusts: devices kept.</summary>
    public static ExtractionOptions Default { get; } = new();

    /// <summary>For layers from outside: character and block devices refused.</summary>
    public static ExtractionOptions Imported { get; } = new() { AllowDevices = false };
}
