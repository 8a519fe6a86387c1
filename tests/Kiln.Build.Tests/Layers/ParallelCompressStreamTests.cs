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
        // Each 4 MiB of input compressed on its own, in order: the chunks are independent members or frames.
        var reference = new MemoryStream();
        for (int at = 0; at < data.Length; at += Chunk)
        {
            reference.Write(CompressAlone(compression, data.AsSpan(at, Math.Min(Chunk, data.Length - at))));
        }
        Assert.Equal(reference.ToArray(), whole);
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

    private static (byte[] Output, byte[] DiffId, byte[] Digest) Pack(Compression compression, Action<ParallelCompressStream> write)
    {
        var output = new MemoryStream();
        using var stream = new ParallelCompressStream(output, compression, CancellationToken.None);
        write(stream);
        var (diffId, digest, size) = stream.Complete();
        Assert.Equal(output.Length, size);
        return (output.ToArray(), diffId, digest);
    }

    private static byte[] CompressAlone(Compression compression, ReadOnlySpan<byte> input)
    {
        if (compression == Compression.Zstd)
        {
            using var zstd = new Compressor(3);
            zstd.SetParameter(ZSTD_cParameter.ZSTD_c_checksumFlag, 0);
            return zstd.Wrap(input).ToArray();
        }
        var ms = new MemoryStream();
        using (var gzip = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true))
        {
            gzip.Write(input);
        }
        return ms.ToArray();
    }
}
