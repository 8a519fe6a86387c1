using Kiln.Build.Layers;
using Kiln.Build.Store;
using Kiln.Oci;
using Kiln.Oci.Image;

namespace Kiln.Build.Execution;

/// <summary>An image copied from any source into the store and made ready to build on, as <c>kiln pull</c> and a
/// <c>from: HOST/REPO</c> base need it: the import's checks and snapshots, then the name.</summary>
public static class ImagePull
{
    /// <summary>Pulls <paramref name="top"/> (a manifest, or an index resolved for <paramref name="platform"/>) from
    /// <paramref name="source"/> into the store: blobs checked on arrival, then each layer's snapshot extracted (and
    /// checked against the config's diff IDs) as a <c>from: oci:</c> import does, and only then the name. A failure
    /// leaves nothing named.</summary>
    /// <returns>The copy's summary (its <see cref="ImageCopySummary.Root"/> is the manifest pulled) and the image's
    /// state, for a build that starts from it.</returns>
    public static async Task<(ImageCopySummary Summary, ImageState State)> PullAsync(KilnStore store, IImageSource source, Descriptor top,
        string? name, Platform platform, ExtractionOptions? extraction = null, IProgress<ImageCopyEvent>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(top);
        var summary = await ImageCopier.CopyAsync(source, top, new StoreImageSink(store), new ImageCopyOptions { Platform = platform },
            progress, cancellationToken).ConfigureAwait(false);
        // Read back from the store, where every blob is now checked: the layers are not fetched a second time.
        var options = new BuildOptions { Platform = platform, Extraction = extraction ?? ExtractionOptions.Default };
        var state = await OciImport.ImportAsync(store, new StoreImageSource(store), source.Name, summary.Root, options, cancellationToken)
            .ConfigureAwait(false);
        if (name is not null)
        {
            await store.Names.TagAsync(name, summary.Root, cancellationToken).ConfigureAwait(false);
        }
        return (summary, state);
    }
}
