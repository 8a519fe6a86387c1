namespace Kiln.Oci.Archives;

/// <summary>Writes an oci-archive: a tar of an OCI image layout (<c>oci-layout</c>, <c>index.json</c> naming the
/// one manifest by <c>org.opencontainers.image.ref.name</c>, <c>blobs/sha256/…</c>), as <c>skopeo</c> reads with
/// <c>oci-archive:PATH[:REF]</c>.</summary>
public static class OciArchiveWriter
{
    public static async Task WriteAsync(Stream output, ArchiveImage image, string refName, ArchiveOptions options,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(refName);
        var (manifest, bytes) = await ImageArchiveWriter.ReadManifestAsync(image, cancellationToken).ConfigureAwait(false);
        var tar = new UstarWriter(output, options.Epoch.ToUnixTimeSeconds());
        var annotations = new Dictionary<string, string> { [Annotations.RefName] = refName };
        await ImageArchiveWriter.WriteLayoutAsync(tar, image, manifest, bytes, annotations, cancellationToken).ConfigureAwait(false);
        await tar.FinishAsync(cancellationToken).ConfigureAwait(false);
    }
}
