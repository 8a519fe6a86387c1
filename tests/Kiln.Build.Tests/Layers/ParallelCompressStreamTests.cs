using System.IO.Compression;
using System.Security.Cryptography;
using Kiln.Build.Layers;
using Kiln.Oci;
using ZstdSharp;
using ZstdSharp.Unsafe;

namespace Kiln.Build.Tests.Layers;

public class ParallelCompressStreamTests
{
    private const int Chunk = 4 << 20;

    [Theory]
    [InlineData(Compression.Gzip)]
    [InlineData(Compression.Zstd)]
    public void Chunks_are_cut_every_4_MiB_of_input_however_the_input_is_written(Compression compression)
    {
        var data = new byte[(2 * Chunk) + (1 << 20) + 123];
        new Random(11).NextBytes(data);
        data.AsSpan(Chunk, 1 << 20).Clear(); // a compressible stretch, so chunks differ in compressed size

        var (whole, diffId, digest) = Pack(compression, s => s.Write(data));
        var (pieces, _, _) = Pack(compression, s =>
        {
            // A byte, then pieces that cross the first buffer's growth and the chunk boundaries at odd offsets.
            int at = 0;
            foreach (int n in new[] { 1, 70_000, (1 << 20) + 5, 3 << 20 })
            {
                s.Write(data, at, n);
                at += n;
            }
            for (; at < data.Length; at += 333_333)
            {
                s.Write(data, at, Math.Min(333_333, data.Length - at));
            }
        });

        Assert.Equal(whole, pieces);
        // Each 4 MiB of input compressed on its own, in order: the chunks are independent members or frames. Both formats
        // store the first and last (random bytes) and compress the middle one (it starts with the zeros).
        var reference = new MemoryStream();
        for (int at = 0, i = 0; at < data.Length; at += Chunk, i++)
        {
            bool stored = i != 1;
            reference.Write(CompressAlone(compression, data.AsSpan(at, Math.Min(Chunk, data.Length - at)), stored));
        }
        Assert.Equal(reference.ToArray(), whole);
        Assert.Equal(data, Decompress(compression, whole));
        Assert.Equal(SHA256.HashData(data), diffId);
        Assert.Equal(SHA256.HashData(whole), digest);
    }

    [Theory]
    [InlineData(Compression.Gzip)]
    [InlineData(Compression.Zstd)]
    public void A_small_input_is_one_chunk(Compression compression)
    {
        var data = new byte[5000];
        new Random(3).NextBytes(data);
        var (output, diffId, _) = Pack(compression, s => s.Write(data));
        Assert.Equal(CompressAlone(compression, data), output);
        Assert.Equal(SHA256.HashData(data), diffId);
    }

    [Fact]
    public void A_gzip_chunk_is_stored_only_when_deflate_saves_almost_nothing_at_its_start_middle_and_end()
    {
        const int sample = ParallelCompressStream.SampleSize;
        var random = new byte[Chunk];
        new Random(5).NextBytes(random);
        Assert.True(ParallelCompressStream.LooksIncompressible(random, random.Length));
        // Too small to judge: deflated whatever it holds.
        Assert.False(ParallelCompressStream.LooksIncompressible(random, (16 * sample) - 1));

        // Any one sample that compresses keeps the whole chunk deflated: text at the start, the middle or the end.
        var text = System.Text.Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(0, 2000).Select(i => $"line {i} of a config file\n")));
        foreach (int at in new[] { 0, (Chunk / 2) - (sample / 2), Chunk - sample })
        {
            var mixed = (byte[])random.Clone();
            text.AsSpan(0, sample).CopyTo(mixed.AsSpan(at));
            Assert.False(ParallelCompressStream.LooksIncompressible(mixed, mixed.Length), $"text at {at}");
        }

        // Bytes that level-1 deflate saves a little of (8 zeros in every 64 bytes): still deflated.
        var nearly = (byte[])random.Clone();
        for (int i = 0; i < nearly.Length; i += 64)
        {
            nearly.AsSpan(i, 8).Clear();
        }
        int saved = nearly.Length - CompressAlone(Compression.Gzip, nearly, stored: false).Length;
        Assert.InRange(saved, nearly.Length / 30, nearly.Length / 5);
        Assert.False(ParallelCompressStream.LooksIncompressible(nearly, nearly.Length));
    }

    [Fact]
    public void A_stored_gzip_chunk_is_no_larger_than_a_deflated_one_and_reads_back_as_it_was()
    {
        var data = new byte[Chunk + 1000];
        new Random(9).NextBytes(data);
        var (output, _, digest) = Pack(Compression.Gzip, s => s.Write(data));
        Assert.Equal(data, Decompress(Compression.Gzip, output));
        Assert.Equal(SHA256.HashData(output), digest);
        long deflated = CompressAlone(Compression.Gzip, data.AsSpan(0, Chunk), stored: false).Length
            + CompressAlone(Compression.Gzip, data.AsSpan(Chunk), stored: false).Length;
        Assert.True(output.Length <= deflated, $"{output.Length} stored vs {deflated} deflated");
        // Stored: 5 bytes of block header per block (16 KiB or more each), and a gzip member's 18 bytes of header and trailer.
        Assert.True(output.Length <= data.Length + (5 * ((data.Length / (16 << 10)) + 2)) + (2 * 18), $"{output.Length} for {data.Length}");
    }

    [Fact]
    public async Task A_stored_zstd_chunk_is_no_larger_than_a_compressed_one_and_zstd_itself_reads_it_back()
    {
        var data = new byte[Chunk + (300 << 10)];
        new Random(12).NextBytes(data);
        var (output, _, digest) = Pack(Compression.Zstd, s => s.Write(data));
        Assert.Equal(SHA256.HashData(output), digest);
        Assert.Equal(data, Decompress(Compression.Zstd, output));
        long compressed = CompressAlone(Compression.Zstd, data.AsSpan(0, Chunk)).Length + CompressAlone(Compression.Zstd, data.AsSpan(Chunk)).Length;
        Assert.True(output.Length <= compressed, $"{output.Length} stored vs {compressed} compressed");
        // Stored: 9 bytes of frame header per chunk, 3 per block of 128 KiB.
        Assert.Equal(data.Length + (2 * 9) + (3 * (32 + 3)), output.Length);
        // The reference implementation (Debian's zstd, which scripts/setup.sh installs for the tests) agrees.
        var file = Path.Combine(Path.GetTempPath(), $"kiln-zstd-{Guid.NewGuid():N}.zst");
        try
        {
            File.WriteAllBytes(file, output);
            var psi = new System.Diagnostics.ProcessStartInfo("zstd", ["-d", "-q", "-c", file]) { RedirectStandardOutput = true, RedirectStandardError = true };
            using var zstd = System.Diagnostics.Process.Start(psi)!;
            var decoded = new MemoryStream();
            var errors = zstd.StandardError.ReadToEndAsync();
            await zstd.StandardOutput.BaseStream.CopyToAsync(decoded);
            await zstd.WaitForExitAsync();
            Assert.True(zstd.ExitCode == 0, await errors);
            Assert.Equal(data, decoded.ToArray());
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>Keeps what it is given and says its digest is <see cref="Marker"/>.</summary>
    private sealed class HashingDestination : MemoryStream, ISha256Destination
    {
        public static readonly byte[] Marker = [.. Enumerable.Repeat((byte)7, 32)];

        public byte[] Sha256SoFar() => Marker;
    }

    [Theory]
    [InlineData(Compression.Gzip)]
    [InlineData(Compression.Zstd)]
    public void A_destination_that_hashes_what_it_is_given_gives_the_blobs_digest_and_the_bytes_are_the_same(Compression compression)
    {
        var data = new byte[Chunk + 5000];
        new Random(21).NextBytes(data);
        data.AsSpan(0, Chunk / 2).Clear();
        var (plain, _, _) = Pack(compression, s => s.Write(data));

        var destination = new HashingDestination();
        using var stream = new ParallelCompressStream(destination, compression, CancellationToken.None);
        stream.Write(data);
        var (diffId, digest, size) = stream.Complete();
        Assert.Equal(HashingDestination.Marker, digest);
        Assert.Equal(SHA256.HashData(data), diffId);
        Assert.Equal(plain, destination.ToArray());
        Assert.Equal(plain.Length, size);
    }

    private static byte[] Decompress(Compression compression, byte[] compressed)
    {
        if (compression == Compression.Zstd)
        {
            using var zs = new DecompressionStream(new MemoryStream(compressed));
            var o = new MemoryStream();
            zs.CopyTo(o);
            return o.ToArray();
        }
        using var gzip = new GZipStream(new MemoryStream(compressed), CompressionMode.Decompress);
        var output = new MemoryStream();
        gzip.CopyTo(output);
        return output.ToArray();
    }

    private static (byte[] Output, byte[] DiffId, byte[] Digest) Pack(Compression compression, Action<ParallelCompressStream> write)
    {
        var output = new MemoryStream();
        using var stream = new ParallelCompressStream(output, compression, CancellationToken.None);
        write(stream);
        var (diffId, digest, size) = stream.Complete();
        Assert.Equal(output.Length, size);
        return (output.ToArray(), diffId, digest);
    }

    private static byte[] CompressAlone(Compression compression, ReadOnlySpan<byte> input, bool stored = false)
    {
        if (compression == Compression.Zstd && stored)
        {
            // RFC 8878, written out here: magic, frame header descriptor (4-byte content size, single segment), the
            // content size, then raw blocks of 128 KiB (the last one shorter) behind 3-byte headers.
            var frame = new List<byte> { 0x28, 0xB5, 0x2F, 0xFD, 0xA0 };
            frame.AddRange(BitConverter.GetBytes(input.Length));
            for (int at = 0; at < input.Length; at += 128 << 10)
            {
                int n = Math.Min(128 << 10, input.Length - at);
                int header = (n << 3) | (at + n == input.Length ? 1 : 0);
                frame.AddRange([(byte)header, (byte)(header >> 8), (byte)(header >> 16)]);
                frame.AddRange(input.Slice(at, n).ToArray());
            }
            return [.. frame];
        }
        if (compression == Compression.Zstd)
        {
            using var zstd = new Compressor(3);
            zstd.SetParameter(ZSTD_cParameter.ZSTD_c_checksumFlag, 0);
            return zstd.Wrap(input).ToArray();
        }
        var ms = new MemoryStream();
        using (var gzip = new GZipStream(ms, stored ? CompressionLevel.NoCompression : CompressionLevel.Fastest, leaveOpen: true))
        {
            gzip.Write(input);
        }
        return ms.ToArray();
    }
}
