using Kiln.Oci;

namespace Kiln.Build.Layers;

/// <summary>A read-only pass-through stream that SHA-256s every byte read from it.</summary>
internal sealed class HashingReadStream(Stream inner) : Stream
{
    private readonly Sha256Hasher _hash = new Sha256Hasher();

    public byte[] GetHash() => _hash.GetHashAndReset();

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        int n = inner.Read(buffer);
        _hash.AppendData(buffer[..n]);
        return n;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _hash.Dispose();
        }
        base.Dispose(disposing);
    }
}
