namespace Kiln.Oci.Image;

/// <summary>Where images are read from: an OCI layout, an archive, the store, a registry. A source turns a reference
/// into a descriptor and opens what descriptors name; it checks nothing it does not have to (a reader of its blobs
/// checks their digests as it consumes them).</summary>
public interface IImageSource
{
    /// <summary>Names the source in messages, as the user would write it (<c>oci:PATH</c>, <c>oci-archive:FILE</c>).</summary>
    string Name { get; }

    /// <summary>The descriptor (of a manifest or an index) that <paramref name="reference"/> names: a tag, or for sources
    /// that allow it null for their only image.</summary>
    /// <exception cref="ImageException">No such reference.</exception>
    Task<Descriptor> ResolveAsync(string? reference, CancellationToken cancellationToken = default);

    /// <summary>Opens a blob (config or layer) for reading. A source that knows sizes refuses one whose size differs
    /// from <paramref name="blob"/>'s.</summary>
    Task<Stream> OpenBlobAsync(Descriptor blob, CancellationToken cancellationToken = default);

    /// <summary>Opens a manifest or index. Registries serve those apart from blobs; elsewhere they are blobs.</summary>
    Task<Stream> OpenManifestAsync(Descriptor manifest, CancellationToken cancellationToken = default) =>
        OpenBlobAsync(manifest, cancellationToken);
}
