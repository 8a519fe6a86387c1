using Kiln.Oci;

namespace Kiln.Build.Store.Content;

/// <summary>A write-only stream into the store's ingest area that hashes as it goes. <see cref="CommitAsync"/>
/// checks the digest and renames the blob into place; disposing without committing discards the data.</summary>
public sealed class BlobWriter : Stream, Layers.ISha256Destination
{
    private readonly ContentStore _store;
    private readonly FileStream _file;
    /// <summary>Null when the bytes come from a stream that checks them itself (<see cref="_checkedBy"/>).</summary>
    private readonly Sha256Hasher? _hash;
    private readonly Kiln.Oci.Image.IVerifiedBlobStream? _checkedBy;
    private long _length;
    private long _writebackFrom;
    private bool _done;

    /// <summary>Bytes written between two starts of writeback (<see cref="Native.StartWriteback"/>): a large layer's data goes
    /// to the disk while it is packed, not all in the fsync of <see cref="CommitAsync"/>.</summary>
    private const long WritebackEvery = 8L << 20;

    /// <param name="checkedBy">The stream the bytes are read from, which checks them itself: they are not hashed again,
    /// and the commit takes the digest from it once it has checked the whole blob.</param>
    internal BlobWriter(ContentStore store, string ingestPath, Kiln.Oci.Image.IVerifiedBlobStream? checkedBy = null)
    {
        _store = store;
        _checkedBy = checkedBy;
        _hash = checkedBy is null ? new Sha256Hasher() : null;
        IngestPath = ingestPath;
        _file = new FileStream(ingestPath, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            Share = FileShare.None,
            Options = FileOptions.Asynchronous,
            BufferSize = 1 << 16,
        });
    }

    /// <summary>Where the data is staged until commit.</summary>
    public string IngestPath { get; }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => !_done;
    public override long Length => _length;

    public override long Position
    {
        get => _length;
        set => throw new NotSupportedException("a blob writer cannot seek");
    }

    public byte[] Sha256SoFar() => (_hash ?? throw new InvalidOperationException("this blob writer does not hash")).GetCurrentHash();

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        ThrowIfDone();
        _file.Write(buffer);
        _hash?.AppendData(buffer);
        _length += buffer.Length;
        StartWritebackEvery();
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ThrowIfDone();
        await _file.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
        _hash?.AppendData(buffer.Span);
        _length += buffer.Length;
        StartWritebackEvery();
    }

    private void StartWritebackEvery()
    {
        if (_length - _writebackFrom >= WritebackEvery)
        {
            // From where the last one started: what the FileStream still buffered then is in the kernel now.
            Native.StartWriteback(_file.SafeFileHandle, _writebackFrom);
            _writebackFrom = _length;
        }
    }

    public override void Flush()
    {
        ThrowIfDone();
        _file.Flush();
    }

    public override Task FlushAsync(CancellationToken cancellationToken)
    {
        ThrowIfDone();
        return _file.FlushAsync(cancellationToken);
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("a blob writer is write-only");
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException("a blob writer cannot seek");
    public override void SetLength(long value) => throw new NotSupportedException("a blob writer cannot seek");

    /// <summary>Flushes and fsyncs the data, checks its digest (against <paramref name="expected"/> if given),
    /// and moves it to <c>blobs/sha256/HEX</c>. On a mismatch the data is discarded and a
    /// <see cref="StoreException"/> thrown. A writer whose source checks the bytes commits only once that source has
    /// checked them all.</summary>
    public async Task<Descriptor> CommitAsync(string mediaType, Digest? expected = null, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(mediaType);
        ThrowIfDone();
        _done = true;
        try
        {
            await _file.FlushAsync(ct).ConfigureAwait(false);
            _file.Flush(flushToDisk: true);
            await _file.DisposeAsync().ConfigureAwait(false);
            Digest digest;
            if (_checkedBy is { } source)
            {
                if (!source.Verified || source.Descriptor.Size != _length)
                {
                    throw new InvalidOperationException($"blob {source.Descriptor.Digest} was not read to its end through the stream that checks it");
                }
                digest = source.Descriptor.Digest;
            }
            else
            {
                digest = Digest.FromHash(_hash!.GetHashAndReset());
            }
            if (expected is { } want && want != digest)
            {
                throw StoreException.DigestMismatch(want, digest);
            }
            _store.MoveIngestToBlob(IngestPath, digest);
            return new Descriptor { MediaType = mediaType, Digest = digest, Size = _length };
        }
        catch (Exception e)
        {
            await _file.DisposeAsync().ConfigureAwait(false);
            StoreFs.TryDeleteFile(IngestPath);
            if (e is StoreException or OperationCanceledException)
            {
                throw;
            }
            throw StoreException.Io("committing a blob", e);
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Discard();
        }
        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        if (!_done)
        {
            _done = true;
            await _file.DisposeAsync().ConfigureAwait(false);
            StoreFs.TryDeleteFile(IngestPath);
        }
        _hash?.Dispose();
        await base.DisposeAsync().ConfigureAwait(false);
    }

    private void Discard()
    {
        if (!_done)
        {
            _done = true;
            _file.Dispose();
            StoreFs.TryDeleteFile(IngestPath);
        }
        _hash?.Dispose();
    }

    private void ThrowIfDone() => ObjectDisposedException.ThrowIf(_done, this);
}
