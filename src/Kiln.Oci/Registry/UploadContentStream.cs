namespace Kiln.Oci.Registry;

/// <summary>The body of an upload request: at most <c>length</c> bytes of a source, re-arming the request's
/// stall watchdog and reporting progress as they are read by the HTTP stack.</summary>
internal sealed class UploadContentStream(Stream source, long length, CancellationTokenSource watchdog, TimeSpan stall,
    IProgress<long>? progress) : Stream
{
    private long _sent;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => length;
    public override long Position { get => _sent; set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        int n = source.Read(buffer[..(int)Math.Min(buffer.Length, length - _sent)]);
        return Moved(n);
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        int n = await source.ReadAsync(buffer[..(int)Math.Min(buffer.Length, length - _sent)], cancellationToken).ConfigureAwait(false);
        return Moved(n);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    private int Moved(int n)
    {
        if (n == 0 && _sent < length)
        {
            throw new EndOfStreamException($"the blob's source ended after {_sent} of {length} bytes");
        }
        _sent += n;
        try
        {
            watchdog.CancelAfter(stall);
        }
        catch (ObjectDisposedException)
        {
            // The request is over; nothing left to watch.
        }
        if (n > 0)
        {
            progress?.Report(n);
        }
        return n;
    }

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            source.Dispose();
        }
        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        await source.DisposeAsync().ConfigureAwait(false);
        await base.DisposeAsync().ConfigureAwait(false);
    }
}
