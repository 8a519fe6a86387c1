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
}
