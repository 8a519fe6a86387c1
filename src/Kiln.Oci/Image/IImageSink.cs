namespace Kiln.Oci.Image;

/// <summary>Where images are written: an OCI layout, an archive, the store, a registry. Blobs go first, manifests
/// after the blobs they name, indexes after their manifests, and the name last, so that a reader never finds a name
/// whose content is missing.</summary>
/// <remarks>Every method maps onto the distribution protocol: <see cref="HasBlobAsync"/> is a HEAD, a blob a
/// streamed upload, a manifest a PUT by digest and a tag a PUT by tag.</remarks>
public interface IImageSink
{
    /// <summary>Names the sink in messages.</summary>
    string Name { get; }

    /// <summary>Whether the sink already holds <paramref name="blob"/> (by digest, with its size), so that it is not copied.</summary>
    Task<bool> HasBlobAsync(Descriptor blob, CancellationToken cancellationToken = default);

    /// <summary>Writes a blob from <paramref name="content"/>, checking its digest and size on the way. On a mismatch
    /// nothing is named by the digest (the bytes go to an ingest file that is renamed only once verified) and
    /// <see cref="ImageException"/> (or the sink's own exception) is thrown.</summary>
    Task WriteBlobAsync(Descriptor blob, Stream content, CancellationToken cancellationToken = default);

    /// <summary>Writes a manifest or index whose bytes the caller has read and checked against <paramref name="manifest"/>.</summary>
    Task WriteManifestAsync(Descriptor manifest, ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken = default);

    /// <summary>Names (tags) a manifest or index already written.</summary>
    Task TagAsync(string name, Descriptor manifest, CancellationToken cancellationToken = default);
}

/// <summary>A sink that can take a blob from another repository of itself without its bytes (a registry's
/// cross-repository mount). Optional: a sink without it gets the bytes.</summary>
public interface IBlobMountSink : IImageSink
{
    /// <summary>Tries to mount <paramref name="blob"/> from <paramref name="source"/>; false when it cannot (another host,
    /// no access), and the blob is then copied.</summary>
    Task<bool> TryMountAsync(Descriptor blob, IImageSource source, CancellationToken cancellationToken = default);
}

/// <summary>A sink that writes one stream (a tar archive): it must see the whole image before it writes, takes
/// blobs and manifests one at a time in the order it chooses, and is named through <see cref="ImageContents.Name"/>
/// rather than <see cref="IImageSink.TagAsync"/>.</summary>
public interface ISequentialImageSink : IImageSink
{
    /// <summary>Told what is to come before anything is written; returns the order in which it takes the blobs and
    /// manifests (each of <paramref name="contents"/> once).</summary>
    Task<IReadOnlyList<Descriptor>> BeginAsync(ImageContents contents, CancellationToken cancellationToken = default);

    /// <summary>Ends the stream once everything is written.</summary>
    Task CompleteAsync(CancellationToken cancellationToken = default);
}

/// <summary>Everything a copy writes: the manifest or index at its top, the name it gets, every manifest and index
/// (read and checked, children before the indexes that list them) and every other blob, each once.</summary>
public sealed record ImageContents
{
    public required Descriptor Root { get; init; }

    public string? Name { get; init; }

    /// <summary>Manifests and indexes with their bytes, in the order they are written: the root last.</summary>
    public required IReadOnlyList<(Descriptor Descriptor, ReadOnlyMemory<byte> Bytes)> Manifests { get; init; }

    /// <summary>Configs and layers, each once, in the order the manifests first name them.</summary>
    public required IReadOnlyList<Descriptor> Blobs { get; init; }
}
