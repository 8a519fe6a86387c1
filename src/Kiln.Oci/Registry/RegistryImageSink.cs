using Kiln.Oci.Image;

namespace Kiln.Oci.Registry;

/// <summary>One repository of a registry as an <see cref="IImageSink"/>. A blob is looked for first (HEAD), then
/// mounted from another repository of the same registry when the copy reads from one, and uploaded only when
/// neither works; manifests go after their blobs (PUT by digest) and the tag last, so a reader of the tag never
/// finds content missing.</summary>
public sealed class RegistryImageSink : IBlobMountSink
{
    private readonly Func<Descriptor, CancellationToken, Task<Stream>>? _reopen;
    private readonly Dictionary<Digest, (string MediaType, ReadOnlyMemory<byte> Bytes)> _manifests = [];
    private readonly Func<Digest, string?>? _knownIn;

    /// <param name="client">The registry's client; the caller keeps it and disposes it.</param>
    /// <param name="reopen">Opens a blob's content again from its start, for an upload that must be tried again after
    /// the stream the copy handed over was partly sent (the source's <see cref="IImageSource.OpenBlobAsync"/>).
    /// Without it a blob whose stream cannot seek gets one try.</param>
    /// <param name="knownIn">Another repository of this registry a blob is known to be in (pushed there or pulled from
    /// there before), or null: a blob the source cannot mount itself is mounted from there.</param>
    public RegistryImageSink(RegistryClient client, string repository, Func<Descriptor, CancellationToken, Task<Stream>>? reopen = null,
        Func<Digest, string?>? knownIn = null)
    {
        _knownIn = knownIn;
        ArgumentNullException.ThrowIfNull(client);
        ArgumentException.ThrowIfNullOrEmpty(repository);
        Client = client;
        Repository = repository;
        _reopen = reopen;
    }

    public RegistryClient Client { get; }

    public string Repository { get; }

    public string Name => Client.Registry + "/" + Repository;

    public async Task<bool> HasBlobAsync(Descriptor blob, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(blob);
        // A registry that does not say the size (-1) is taken at its word: it stores blobs by digest.
        return await Client.BlobSizeAsync(Repository, blob.Digest, cancellationToken).ConfigureAwait(false) is { } size
            && (size == blob.Size || size < 0);
    }

    /// <summary>Mounts <paramref name="blob"/> when <paramref name="source"/> is another repository of this registry, or
    /// from the repository the sink was told it is known in; false otherwise, and when the registry declines (then it
    /// is uploaded).</summary>
    public async Task<bool> TryMountAsync(Descriptor blob, IImageSource source, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(blob);
        if (source is not RegistryImageSource && _knownIn?.Invoke(blob.Digest) is { } known && known != Repository)
        {
            try
            {
                return await Client.TryMountBlobAsync(Repository, blob, known, cancellationToken).ConfigureAwait(false);
            }
            catch (RegistryException e) when (e.Kind != RegistryErrorKind.AuthenticationFailed)
            {
                // Only a hint: a registry that refuses or fails the mount gets the upload, with its own retries.
                return false;
            }
        }
        if (source is not RegistryImageSource other
            || !string.Equals(other.Client.Registry, Client.Registry, StringComparison.OrdinalIgnoreCase)
            || other.Repository == Repository)
        {
            return false;
        }
        var result = await Client.PushBlobAsync(Repository, blob, ct => other.OpenBlobAsync(blob, ct), mountFrom: other.Repository,
            cancellationToken: cancellationToken).ConfigureAwait(false);
        if (result == BlobPushResult.Uploaded)
        {
            // The registry would not mount it (no access to the other repository, or it lacks the blob) and the
            // client uploaded it instead: present now, but not a mount.
            return false;
        }
        return true;
    }

    /// <summary>Uploads a blob (in chunks above the client's chunk size). The registry checks the digest when the
    /// upload is completed and stores nothing under it on a mismatch; the size is checked on the way.</summary>
    public async Task WriteBlobAsync(Descriptor blob, Stream content, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(blob);
        ArgumentNullException.ThrowIfNull(content);
        int opened = 0;
        long start = content.CanSeek ? content.Position : 0;
        async Task<Stream> OpenAsync(CancellationToken ct)
        {
            if (opened++ == 0)
            {
                return new NotClosing(content);
            }
            if (_reopen is not null)
            {
                return await _reopen(blob, ct).ConfigureAwait(false);
            }
            if (content.CanSeek)
            {
                content.Position = start;
                return new NotClosing(content);
            }
            throw new IOException($"blob {blob.Digest} cannot be read again for another try");
        }
        await Client.PushBlobAsync(Repository, blob, OpenAsync, cancellationToken: cancellationToken).ConfigureAwait(false);
    }

    public async Task WriteManifestAsync(Descriptor manifest, ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        if (bytes.Length != manifest.Size)
        {
            throw ImageException.WrongSize(Name, manifest, bytes.Length);
        }
        var actual = Digest.Compute(bytes.Span);
        if (actual != manifest.Digest)
        {
            throw ImageException.Mismatch(Name, manifest, actual);
        }
        await Client.PutManifestAsync(Repository, manifest.Digest.Value, manifest.MediaType, bytes, cancellationToken).ConfigureAwait(false);
        lock (_manifests)
        {
            _manifests[manifest.Digest] = (manifest.MediaType, bytes);
        }
    }

    /// <summary>Points tag <paramref name="name"/> at a manifest or index already written (PUT of its bytes by tag).</summary>
    public async Task TagAsync(string name, Descriptor manifest, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(manifest);
        if (!ImageReference.ValidTag(name))
        {
            throw RegistryException.BadReference(name, "not a valid tag");
        }
        (string MediaType, ReadOnlyMemory<byte> Bytes) written;
        bool known;
        lock (_manifests)
        {
            known = _manifests.TryGetValue(manifest.Digest, out written);
        }
        if (!known)
        {
            var fetched = await Client.GetManifestAsync(Repository, manifest.Digest.Value, cancellationToken).ConfigureAwait(false);
            written = (fetched.Descriptor.MediaType, fetched.Content);
        }
        await Client.PutManifestAsync(Repository, name, written.MediaType, written.Bytes, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The copy owns the stream it hands over and disposes it; the upload must not close it first.</summary>
    private sealed class NotClosing(Stream inner) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => inner.CanSeek;
        public override bool CanWrite => false;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => inner.Position = value; }
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override int Read(Span<byte> buffer) => inner.Read(buffer);
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            inner.ReadAsync(buffer, cancellationToken);
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            inner.ReadAsync(buffer, offset, count, cancellationToken);
        public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);
        public override void Flush() { }
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
