using Kiln.Oci.Image;

namespace Kiln.Oci.Archives;

/// <summary>Writes an oci-archive: a tar of an OCI image layout (<c>oci-layout</c>, <c>index.json</c> naming the
/// one manifest by <c>org.opencontainers.image.ref.name</c>, <c>blobs/sha256/…</c>), as <c>skopeo</c> reads with
/// <c>oci-archive:PATH[:REF]</c>. A copy of the image into an <see cref="ArchiveImageSink"/>.</summary>
public static class OciArchiveWriter
{
    /// <param name="manifest">The image manifest (OCI or Docker schema 2) in <paramref name="source"/>.</param>
    public static async Task WriteAsync(Stream output, IImageSource source, Descriptor manifest, string refName, ArchiveOptions options,
        IProgress<ImageCopyEvent>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(refName);
        await ArchiveCopy.WriteAsync(new ArchiveImageSink(output, ArchiveKind.Oci, options), source, manifest, refName, progress, cancellationToken).ConfigureAwait(false);
    }
}

/// <summary>What both archive writers do: refuse anything but one image manifest, then copy.</summary>
internal static class ArchiveCopy
{
    public static async Task WriteAsync(ArchiveImageSink sink, IImageSource source, Descriptor manifest, string name,
        IProgress<ImageCopyEvent>? progress, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        if (!MediaTypes.IsManifest(manifest.MediaType))
        {
            throw new ArchiveException($"{manifest.Digest}: '{manifest.MediaType}' is not an image manifest");
        }
        try
        {
            // One at a time: a tar is one stream.
            await ImageCopier.CopyAsync(source, manifest, sink, new ImageCopyOptions { Name = name, Parallelism = 1 }, progress, ct).ConfigureAwait(false);
        }
        catch (ImageException ex)
        {
            throw new ArchiveException(ex.Message, ex);
        }
    }
}
