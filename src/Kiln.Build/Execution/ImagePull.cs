using Kiln.Build.Store;
using Kiln.Oci;
using Kiln.Oci.Image;

namespace Kiln.Build.Execution;

/// <summary>An image copied from any source into the store and made ready to build on, as <c>kiln pull</c> and a
/// <c>from: HOST/REPO</c> base need it: the blobs checked as they arrive, the import's checks of the image, then the name.
/// The layers are extracted on first use, as skopeo leaves them packed: a pull writes each byte once and hashes it once.</summary>
public static class ImagePull
{
    /// <summary>Pulls <paramref name="top"/> (a manifest, or an index resolved for <paramref name="platform"/>) from
    /// <paramref name="source"/> into the store: blobs checked on arrival, then the manifest and config checked as a
    /// <c>from: oci:</c> import does, and only then the name. A failure leaves nothing named. No layer is extracted:
    /// whatever first reads the image's files does that (<see cref="Store.Snapshots.SnapshotStore.EnsureAsync"/>),
    /// checking each against the config's diff IDs.</summary>
    /// <returns>The copy's summary (its <see cref="ImageCopySummary.Root"/> is the manifest pulled) and the image's
    /// state, for a build that starts from it.</returns>
    public static async Task<(ImageCopySummary Summary, ImageState State)> PullAsync(KilnStore store, IImageSource source, Descriptor top,
        string? name, Platform platform, IProgress<ImageCopyEvent>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(top);
        var summary = await ImageCopier.CopyAsync(source, top, new StoreImageSink(store), new ImageCopyOptions { Platform = platform },
            progress, cancellationToken).ConfigureAwait(false);
        // Read back from the store, where every blob is now checked: only the manifest and config, not the layers.
        var state = await OciImport.FromStoreAsync(store, source.Name, summary.Root, cancellationToken).ConfigureAwait(false);
        if (name is not null)
        {
            await store.Names.TagAsync(name, summary.Root, cancellationToken).ConfigureAwait(false);
        }
        if (source is Kiln.Oci.Registry.RegistryImageSource registry)
        {
            // A later push to another repository of that registry mounts these blobs from there.
            var image = await ImageReader.ReadManifestAsync(new StoreImageSource(store), summary.Root, cancellationToken).ConfigureAwait(false);
            await store.RegistryBlobs.RecordAsync(registry.Client.Registry, registry.Repository,
                image.Layers.Select(l => l.Descriptor.Digest).Prepend(image.Manifest.Config.Digest), cancellationToken).ConfigureAwait(false);
        }
        return (summary, state);
    }
}
