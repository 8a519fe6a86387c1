using System.Buffers;
using System.Text;

namespace Kiln.Oci.Archives;

/// <summary>The outer tar of an archive: plain USTAR headers with fixed owner (0:0), modes and mtime, so equal
/// content in equal order gives equal bytes. Names are short (<c>blobs/sha256/HEX</c> is 77 bytes); sizes past
/// the 11 octal digits of USTAR use the GNU base-256 form every reader accepts.</summary>
internal sealed class UstarWriter(Stream output, long mtime)
{
    private const int Block = 512;
    private static readonly byte[] Zeros = new byte[Block * 2];
    private readonly byte[] _header = new byte[Block];

    public async Task WriteDirectoryAsync(string name, CancellationToken ct)
    {
        Fill(name, '5', 0x1ED /* 0755 */, 0);
        await output.WriteAsync(_header, ct).ConfigureAwait(false);
    }

    public async Task WriteFileAsync(string name, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        Fill(name, '0', 0x1A4 /* 0644 */, data.Length);
        await output.WriteAsync(_header, ct).ConfigureAwait(false);
        await output.WriteAsync(data, ct).ConfigureAwait(false);
        await PadAsync(data.Length, ct).ConfigureAwait(false);
    }

    /// <summary>Copies exactly <paramref name="size"/> bytes of <paramref name="data"/> as a file and checks them
    /// against <paramref name="digest"/>: an archive never holds a blob that does not match its name.</summary>
    public async Task WriteBlobAsync(string name, Stream data, long size, Digest digest, CancellationToken ct)
    {
        Fill(name, '0', 0x1A4, size);
        await output.WriteAsync(_header, ct).ConfigureAwait(false);
        using var hash = new Sha256Hasher();
        byte[] buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            long left = size;
            while (left > 0)
            {
                int n = await data.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, left)), ct).ConfigureAwait(false);
                if (n == 0)
                {
                    throw new ArchiveException($"blob {digest} ended after {size - left} bytes; its descriptor says {size}");
                }
                hash.AppendData(buffer, 0, n);
                await output.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                left -= n;
            }
            if (await data.ReadAsync(buffer.AsMemory(0, 1), ct).ConfigureAwait(false) != 0)
            {
                throw new ArchiveException($"blob {digest} is longer than the {size} bytes its descriptor says");
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        var actual = Digest.FromHash(hash.GetHashAndReset());
        if (actual != digest)
        {
            throw new ArchiveException($"blob {digest} does not match its digest (its content hashes to {actual})");
        }
        await PadAsync(size, ct).ConfigureAwait(false);
    }

    /// <summary>The end-of-archive marker: two zero blocks.</summary>
    public async Task FinishAsync(CancellationToken ct) => await output.WriteAsync(Zeros, ct).ConfigureAwait(false);

    private async Task PadAsync(long size, CancellationToken ct)
    {
        int rest = (int)(size % Block);
        if (rest != 0)
        {
            await output.WriteAsync(Zeros.AsMemory(0, Block - rest), ct).ConfigureAwait(false);
        }
    }

    private void Fill(string name, char type, int mode, long size)
    {
        var bytes = Encoding.ASCII.GetBytes(name);
        if (bytes.Length > 100 || !Ascii.IsValid(name))
        {
            throw new ArgumentException($"archive entry name '{name}' is not short ASCII", nameof(name));
        }
        var h = _header.AsSpan();
        h.Clear();
        bytes.CopyTo(h);
        UstarHeader.Octal(h.Slice(100, 8), mode);
        UstarHeader.Octal(h.Slice(108, 8), 0);
        UstarHeader.Octal(h.Slice(116, 8), 0);
        if (size > 0x1FFFFFFFFL)
        {
            var field = h.Slice(124, 12);
            for (int i = 11; i >= 1; i--)
            {
                field[i] = (byte)(size & 0xFF);
                size >>= 8;
            }
            field[0] = 0x80;
        }
        else
        {
            UstarHeader.Octal(h.Slice(124, 12), size);
        }
        UstarHeader.Octal(h.Slice(136, 12), mtime);
        h[156] = (byte)type;
        UstarHeader.Seal(h);
    }
}
