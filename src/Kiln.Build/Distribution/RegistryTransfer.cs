using Kiln.Build.Execution;
using Kiln.Build.Layers;
using Kiln.Build.Store;
using Kiln.Oci;
using Kiln.Oci.Image;
using Kiln.Oci.Registry;

namespace Kiln.Build.Distribution;

/// <summary><c>kiln push</c> and <c>kiln pull</c>: each one copy between the store and a registry repository.</summary>
public static class RegistryTransfer
{
    /// <summary>Pushes the store's image <paramref name="manifest"/> to a repository: blobs the registry has are skipped
    /// (HEAD), the others uploaded several at once, the manifest after them and <paramref name="tag"/> last.</summary>
    public static Task<ImageCopySummary> PushAsync(KilnStore store, Descriptor manifest, RegistryClient client, string repository,
        string? tag, IProgress<ImageCopyEvent>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        var source = new StoreImageSource(store);
        // The stream the copy hands over counts progress and cannot seek: an upload that starts over reopens the blob.
        var sink = new RegistryImageSink(client, repository, source.OpenBlobAsync);
        return ImageCopier.CopyAsync(source, manifest, sink, new ImageCopyOptions { Name = tag }, progress, cancellationToken);
    }

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
