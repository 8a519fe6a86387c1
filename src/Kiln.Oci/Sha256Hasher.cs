using System.Security.Cryptography;
using Org.BouncyCastle.Crypto.Digests;

namespace Kiln.Oci;

/// <summary>SHA-256 for every digest Kiln computes: small inputs with BouncyCastle's managed digest, large ones with
/// .NET's (OpenSSL). Both compute the same function; the split is only about time.</summary>
/// <remarks>.NET's SHA-256 loads and initialises OpenSSL on first use, about 2 ms per process on the reference
/// machine: a quarter of a no-op build, which hashes only cache keys, small manifests and unchanged context
/// files. The managed digest runs at about 170 MB/s against OpenSSL's 1.7 GB/s, so it is used up to
/// <see cref="SmallInput"/> bytes (about 1.5 ms at most): an input is buffered up to that size, and one that grows
/// past it is handed, buffer first, to OpenSSL.</remarks>
public sealed class Sha256Hasher : IDisposable
{
    /// <summary>Inputs up to this many bytes are hashed without OpenSSL.</summary>
    public const int SmallInput = 256 * 1024;

    private byte[] _buffer = [];
    private int _length;
    private IncrementalHash? _large;

    public void AppendData(byte[] data, int offset, int count) => AppendData(data.AsSpan(offset, count));

    public void AppendData(ReadOnlySpan<byte> data)
    {
        if (_large is null && _length + data.Length > SmallInput)
        {
            _large = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            _large.AppendData(_buffer.AsSpan(0, _length));
            _length = 0;
        }
        if (_large is not null)
        {
            _large.AppendData(data);
            return;
        }
        if (_length + data.Length > _buffer.Length)
        {
            Array.Resize(ref _buffer, Math.Min(SmallInput, Math.Max(_length + data.Length, Math.Max(4096, _buffer.Length * 2))));
        }
        data.CopyTo(_buffer.AsSpan(_length));
        _length += data.Length;
    }

    /// <summary>The digest of everything appended since creation or the last reset; then starts afresh.</summary>
    public byte[] GetHashAndReset()
    {
        if (_large is not null)
        {
            var hash = _large.GetHashAndReset();
            _large.Dispose();
            _large = null;
            return hash;
        }
        var result = Managed(_buffer.AsSpan(0, _length));
        _length = 0;
        return result;
    }

    /// <summary>The digest of everything appended so far, without resetting: more may be appended after.</summary>
    public byte[] GetCurrentHash() => _large is not null ? _large.GetCurrentHash() : Managed(_buffer.AsSpan(0, _length));

    public void Dispose()
    {
        _large?.Dispose();
        _large = null;
    }

    public static byte[] HashData(ReadOnlySpan<byte> data) =>
        data.Length <= SmallInput ? Managed(data) : SHA256.HashData(data);

    public static byte[] HashData(Stream stream)
    {
        using var hasher = new Sha256Hasher();
        var buffer = new byte[81920];
        int n;
        while ((n = stream.Read(buffer, 0, buffer.Length)) > 0)
        {
            hasher.AppendData(buffer.AsSpan(0, n));
        }
        return hasher.GetHashAndReset();
    }

    public static async Task<byte[]> HashDataAsync(Stream stream, CancellationToken cancellationToken = default)
    {
        using var hasher = new Sha256Hasher();
        var buffer = new byte[81920];
        int n;
        while ((n = await stream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
        {
            hasher.AppendData(buffer.AsSpan(0, n));
        }
        return hasher.GetHashAndReset();
    }

    /// <summary>Lower-case hex SHA-256 of the UTF-8 bytes of <paramref name="text"/>.</summary>
    public static string HexOf(string text) => Convert.ToHexStringLower(HashData(System.Text.Encoding.UTF8.GetBytes(text)));

    private static byte[] Managed(ReadOnlySpan<byte> data)
    {
        var digest = new Sha256Digest();
        digest.BlockUpdate(data);
        var hash = new byte[32];
        digest.DoFinal(hash);
        return hash;
    }
}
