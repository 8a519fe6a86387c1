using Kiln.Oci;
using Kiln.Oci.Image;

namespace Kiln.Build.Store;

// The store as an image source and sink: a thin adapter over its blob and tag API, kept in this one file.

/// <summary>The store's images, by name, read from its blobs.</summary>
public sealed class StoreImageSource(KilnStore store) : IImageSource
{
    public string Name => "store";

    public Task<Descriptor> ResolveAsync(string? reference, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(reference);
        return store.Names.TryGetTag(reference) is { } tagged
            ? Task.FromResult(tagged)
            : throw ImageException.NoSuchTag(Name, reference, store.Names.ListTags().Select(t => t.Name));
    }

    /// <summary>Opens a blob, refusing one whose size is not its descriptor's (a missing one throws <see cref="StoreException"/>).</summary>
    public Task<Stream> OpenBlobAsync(Descriptor blob, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(blob);
        var stream = store.Content.OpenBlob(blob.Digest);
        if (stream.Length != blob.Size)
        {
            long length = stream.Length;
            stream.Dispose();
            throw ImageException.WrongSize(Name, blob, length);
        }
        return Task.FromResult(stream);
    }
}

/// <summary>Writes into the store: blobs through its ingest area (renamed into <c>blobs/</c> only once their digest
/// and size are checked), names into its <c>index.json</c>.</summary>
public sealed class StoreImageSink(KilnStore store) : IImageSink
{
    public string Name => "store";

    public Task<bool> HasBlobAsync(Descriptor blob, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(blob);
        return Task.FromResult(store.Content.HasBlob(blob.Digest));
    }

    public async Task WriteBlobAsync(Descriptor blob, Stream content, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(blob);
        // A registry's download checks its bytes as they are read: they are hashed there, and not again here.
        var checkedBy = content is IVerifiedBlobStream v && v.Descriptor.Digest == blob.Digest && v.Descriptor.Size == blob.Size ? v : null;
        var writer = store.Content.CreateBlobWriter(checkedBy);
        await using (writer.ConfigureAwait(false))
        {
            // The writer (or the stream) hashes what it is given and its commit checks the digest: the copy checks the size only.
            await BlobCopy.CopyAsync(content, writer, blob, Name, checkDigest: false, cancellationToken).ConfigureAwait(false);
            // A mismatch throws StoreException.DigestMismatch and discards the ingest file.
            await writer.CommitAsync(blob.MediaType, blob.Digest, cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task WriteManifestAsync(Descriptor manifest, ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        if (bytes.Length != manifest.Size)
        {
            throw ImageException.WrongSize(Name, manifest, bytes.Length);
        }
        var written = await store.Content.WriteBlobAsync(bytes, manifest.MediaType, cancellationToken).ConfigureAwait(false);
        if (written.Digest != manifest.Digest)
        {
            throw ImageException.Mismatch(Name, manifest, written.Digest);
        }
    }

    public Task TagAsync(string name, Descriptor manifest, CancellationToken cancellationToken = default) =>
        store.Names.TagAsync(name, manifest, cancellationToken);
}
