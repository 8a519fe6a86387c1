using System.Net;
using System.Security.Cryptography;
using Kiln.Oci.Image;

namespace Kiln.Oci.Registry;

/// <summary>A blob as it is read from the registry: counted and hashed on the way. More bytes than the descriptor's
/// size, or a digest other than its own at the end, throw instead of completing, so a reader that stores only what
/// reached the end without an exception never stores a wrong blob. A dropped or stalled connection is resumed from
/// the current offset with a Range request.</summary>
public sealed class VerifiedBlobStream : Stream, IVerifiedBlobStream
{
    private readonly Func<long, CancellationToken, Task<(HttpResponseMessage Response, Stream Body)>>? _reopen;
    private readonly Descriptor _descriptor;
    private readonly string _where;
    private readonly IProgress<long>? _progress;
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly TimeSpan _stall;
    private readonly int _maxAttempts;
    private readonly Func<int, TimeSpan> _backoff;
    private HttpResponseMessage? _response;
    private Stream? _body;
    private long _position;
    private bool _verified;

    internal VerifiedBlobStream(Descriptor descriptor, string where, HttpResponseMessage? response, Stream body,
        Func<long, CancellationToken, Task<(HttpResponseMessage, Stream)>>? reopen, IProgress<long>? progress,
        TimeSpan stall, int maxAttempts, Func<int, TimeSpan> backoff)
    {
        _descriptor = descriptor;
        _where = where;
        _response = response;
        _body = body;
        _reopen = reopen;
        _progress = progress;
        _stall = stall;
        _maxAttempts = maxAttempts;
        _backoff = backoff;
    }

    /// <summary>Verifies an in-memory or other stream against <paramref name="descriptor"/> (no resumption).</summary>
    public static VerifiedBlobStream Over(Stream body, Descriptor descriptor, string where, IProgress<long>? progress = null) =>
        new(descriptor, where, null, body, null, progress, Timeout.InfiniteTimeSpan, 1, _ => TimeSpan.Zero);

    public Descriptor Descriptor => _descriptor;

    public bool Verified => _verified;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => _descriptor.Size;
    public override long Position { get => _position; set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (buffer.Length == 0)
        {
            return 0;
        }
        for (int failures = 0; ;)
        {
            try
            {
                if (_body is null)
                {
                    (_response, _body) = await _reopen!(_position, cancellationToken).ConfigureAwait(false);
                }
                int n;
                using (var stall = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
                {
                    stall.CancelAfter(_stall);
                    // One byte more than remains is asked for, so that a blob longer than its size shows at once.
                    long remaining = _descriptor.Size - _position;
                    var window = buffer.Length > remaining + 1 ? buffer[..(int)(remaining + 1)] : buffer;
                    n = await _body.ReadAsync(window, stall.Token).ConfigureAwait(false);
                }
                if (n == 0)
                {
                    return Finish();
                }
                if (_position + n > _descriptor.Size)
                {
                    throw RegistryException.SizeMismatch(_where, _descriptor, _descriptor.Size, atLeast: true);
                }
                _hash.AppendData(buffer.Span[..n]);
                _position += n;
                _progress?.Report(n);
                return n;
            }
            catch (Exception e) when (e is not RegistryException && _reopen is not null && RetryPolicy.IsTransient(e, cancellationToken))
            {
                DropConnection();
                if (++failures >= _maxAttempts)
                {
                    throw RegistryException.GaveUp(_where, $"reading blob {_descriptor.Digest} at byte {_position}", failures,
                        e is OperationCanceledException ? new TimeoutException($"no bytes for {_stall.TotalSeconds:0.#} s") : e);
                }
                await Task.Delay(_backoff(failures), cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private int Finish()
    {
        if (_verified)
        {
            return 0;
        }
        if (_position != _descriptor.Size)
        {
            throw RegistryException.SizeMismatch(_where, _descriptor, _position);
        }
        var actual = Digest.FromHash(_hash.GetHashAndReset());
        if (actual != _descriptor.Digest)
        {
            throw RegistryException.DigestMismatch(_where, _descriptor, actual);
        }
        _verified = true;
        return 0;
    }

    private void DropConnection()
    {
        _body?.Dispose();
        _response?.Dispose();
        _body = null;
        _response = null;
    }

    /// <summary>Checks a reopened answer: 206 from the offset asked, or 200 for the whole blob when asked from 0.</summary>
    internal static void CheckRange(HttpResponseMessage response, long offset, Descriptor descriptor, string where)
    {
        long? total = response.StatusCode == HttpStatusCode.PartialContent
            ? response.Content.Headers.ContentRange?.Length
            : response.Content.Headers.ContentLength;
        if (total is { } t && t != descriptor.Size)
        {
            throw RegistryException.SizeMismatch(where, descriptor, t);
        }
        if (offset > 0 && (response.StatusCode != HttpStatusCode.PartialContent || response.Content.Headers.ContentRange?.From != offset))
        {
            throw RegistryException.Protocol(where, $"resuming blob {descriptor.Digest} at byte {offset}: the registry did not answer the range");
        }
    }

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            DropConnection();
            _hash.Dispose();
        }
        base.Dispose(disposing);
    }
}
