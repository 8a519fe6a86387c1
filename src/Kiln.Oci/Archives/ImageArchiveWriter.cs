namespace Kiln.Oci.Archives;

/// <summary>What the oci-archive and docker-archive writers share: the image's blobs, read once and written in a
/// fixed order under <c>blobs/sha256/</c> beside <c>oci-layout</c> and <c>index.json</c>.</summary>
internal static class ImageArchiveWriter
{
    /// <summary>Refuses manifests larger than this: a manifest is read whole.</summary>
    private const long MaxManifestBytes = 4 << 20;

    public static string BlobName(Digest digest) => "blobs/sha256/" + digest.Hex;

    public static async Task<(Manifest Manifest, byte[] Bytes)> ReadManifestAsync(ArchiveImage image, CancellationToken ct)
    {
        var desc = image.Manifest;
        if (desc.MediaType is not (MediaTypes.ImageManifest or MediaTypes.DockerManifest))
        {
            throw new ArchiveException($"{desc.Digest}: '{desc.MediaType}' is not an image manifest");
        }
        if (desc.Size is < 0 or > MaxManifestBytes)
        {
            throw new ArchiveException($"manifest {desc.Digest} claims {desc.Size} bytes; a manifest may have at most 4 MiB");
        }
        var bytes = new byte[desc.Size];
        await using (var stream = image.OpenBlob(desc.Digest))
        {
            await stream.ReadExactlyAsync(bytes, ct).ConfigureAwait(false);
        }
        if (Digest.Compute(bytes) != desc.Digest)
        {
            throw new ArchiveException($"manifest {desc.Digest} does not match its digest");
        }
        try
        {
            return (OciJson.DeserializeManifest(bytes), bytes);
        }
        catch (System.Text.Json.JsonException ex)
        {
            throw new ArchiveException($"manifest {desc.Digest} is not valid: {ex.Message}", ex);
        }
    }

    /// <summary>Writes <c>oci-layout</c>, <c>index.json</c>, the blobs folder and every blob of the image (sorted by
    /// digest, each once).</summary>
    public static async Task WriteLayoutAsync(UstarWriter tar, ArchiveImage image, Manifest manifest, byte[] manifestBytes,
        IReadOnlyDictionary<string, string> annotations, CancellationToken ct)
    {
        await tar.WriteFileAsync("oci-layout", OciJson.Serialize(new OciLayoutFile()), ct).ConfigureAwait(false);
        var index = new ImageIndex
        {
            Manifests = [image.Manifest with { Annotations = new SortedDictionary<string, string>(annotations.ToDictionary(), StringComparer.Ordinal), Platform = null }],
        };
        await tar.WriteFileAsync("index.json", OciJson.Serialize(index), ct).ConfigureAwait(false);
        await tar.WriteDirectoryAsync("blobs/", ct).ConfigureAwait(false);
        await tar.WriteDirectoryAsync("blobs/sha256/", ct).ConfigureAwait(false);

        var blobs = new SortedDictionary<string, Descriptor>(StringComparer.Ordinal);
        blobs[image.Manifest.Digest.Value] = image.Manifest;
        blobs.TryAdd(manifest.Config.Digest.Value, manifest.Config);
        foreach (var layer in manifest.Layers)
        {
            if (blobs.TryGetValue(layer.Digest.Value, out var seen) && seen.Size != layer.Size)
            {
                throw new ArchiveException($"manifest {image.Manifest.Digest} gives blob {layer.Digest} two sizes ({seen.Size} and {layer.Size})");
            }
            blobs.TryAdd(layer.Digest.Value, layer);
        }
        foreach (var desc in blobs.Values)
        {
            if (desc.Digest == image.Manifest.Digest)
            {
                await tar.WriteFileAsync(BlobName(desc.Digest), manifestBytes, ct).ConfigureAwait(false);
                continue;
            }
            await using var stream = image.OpenBlob(desc.Digest);
            await tar.WriteBlobAsync(BlobName(desc.Digest), stream, desc.Size, desc.Digest, ct).ConfigureAwait(false);
        }
    }
}
