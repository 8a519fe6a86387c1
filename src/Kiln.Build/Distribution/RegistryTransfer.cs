using Kiln.Build.Execution;
using Kiln.Build.Store;
using Kiln.Oci;
using Kiln.Oci.Image;
using Kiln.Oci.Registry;

namespace Kiln.Build.Distribution;

/// <summary><c>kiln push</c>: one copy from the store to a registry repository (a pull is <see cref="ImagePull"/>).</summary>
public static class RegistryTransfer
{
    /// <summary>Pushes the store's image <paramref name="manifest"/> to a repository: blobs the registry has are skipped
    /// (HEAD), the others uploaded several at once, the manifest after them and <paramref name="tag"/> last.
    /// A blob the store has seen in another repository of the registry (pushed or pulled, see
    /// <see cref="KilnStore.RegistryBlobs"/>) is mounted from there; the image's blobs are recorded as in this
    /// repository once it is pushed.</summary>
    public static async Task<ImageCopySummary> PushAsync(KilnStore store, Descriptor manifest, RegistryClient client, string repository,
        string? tag, IProgress<ImageCopyEvent>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(client);
        var source = new StoreImageSource(store);
        var known = store.RegistryBlobs;
        // The stream the copy hands over counts progress and cannot seek: an upload that starts over reopens the blob.
        var sink = new RegistryImageSink(client, repository, source.OpenBlobAsync, digest => known.RepositoryOf(client.Registry, digest));
        var summary = await ImageCopier.CopyAsync(source, manifest, sink, new ImageCopyOptions { Name = tag }, progress, cancellationToken).ConfigureAwait(false);
        await RecordAsync(store, client.Registry, repository, summary.Root, cancellationToken).ConfigureAwait(false);
        return summary;
    }

    /// <summary>Records the config and layers of the store's image <paramref name="manifest"/> as in
    /// <paramref name="repository"/> of <paramref name="registry"/>, for later mounts into other repositories.</summary>
    public static async Task RecordAsync(KilnStore store, string registry, string repository, Descriptor manifest, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(manifest);
        if (!MediaTypes.IsManifest(manifest.MediaType))
        {
            return;
        }
        var image = await ImageReader.ReadManifestAsync(new StoreImageSource(store), manifest, cancellationToken).ConfigureAwait(false);
        await store.RegistryBlobs.RecordAsync(registry, repository,
            image.Layers.Select(l => l.Descriptor.Digest).Prepend(image.Manifest.Config.Digest), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Pushes the store's referrers of <paramref name="manifest"/> (test results, SBOM, build record) to the
    /// repository: their blobs, each manifest by digest, and each an entry of the <c>sha256-HEX</c> fallback tag index,
    /// so registries without the referrers API list them too (one with it lists them from their subject).
    /// Returns how many were pushed.</summary>
    public static async Task<int> PushReferrersAsync(KilnStore store, Descriptor manifest, RegistryClient client, string repository,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(client);
        var referrers = await Provenance.StoredReferrers.ListAsync(store, manifest.Digest, cancellationToken).ConfigureAwait(false);
        foreach (var referrer in referrers)
        {
            var bytes = await store.Content.ReadBlobAsync(referrer.Manifest.Digest, cancellationToken).ConfigureAwait(false);
            using (var doc = System.Text.Json.JsonDocument.Parse(bytes))
            {
                var config = doc.RootElement.GetProperty("config");
                var blobs = new List<Descriptor>(referrer.Layers)
                {
                    new() { MediaType = config.GetProperty("mediaType").GetString()!, Digest = Digest.Parse(config.GetProperty("digest").GetString()!), Size = config.GetProperty("size").GetInt64() },
                };
                foreach (var blob in blobs)
                {
                    await client.PushBlobAsync(repository, blob, _ => Task.FromResult(store.Content.OpenBlob(blob.Digest)),
                        cancellationToken: cancellationToken).ConfigureAwait(false);
                }
            }
            await client.PutManifestAsync(repository, referrer.Manifest.Digest.Value, MediaTypes.ImageManifest, bytes, cancellationToken).ConfigureAwait(false);
            await client.AddReferrerToFallbackAsync(repository, manifest.Digest,
                new Referrer(new Descriptor { MediaType = MediaTypes.ImageManifest, Digest = referrer.Manifest.Digest, Size = bytes.Length }, referrer.ArtifactType),
                cancellationToken).ConfigureAwait(false);
        }
        return referrers.Count;
    }
}
