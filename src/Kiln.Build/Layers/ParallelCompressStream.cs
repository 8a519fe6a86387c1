using Kiln.Oci;
using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Compression;
using ZstdSharp;
using ZstdSharp.Unsafe;

namespace Kiln.Build.Layers;

/// <summary>A write-only stream that cuts the uncompressed bytes into fixed-size chunks, compresses chunks in
/// parallel as independent gzip members or zstd frames (concatenations both formats define as one stream, as
/// pigz --independent and zstd -T do; a chunk that does not compress is stored, see <see cref="LooksIncompressible"/>),
/// and writes them in order to the destination while hashing the uncompressed and compressed bytes (the compressed ones
/// only when the destination does not, see <see cref="ISha256Destination"/>). Chunk boundaries depend only on the input,
/// so output is deterministic.</summary>
internal sealed class ParallelCompressStream : Stream
{
    private const int ChunkSize = 4 << 20;
    private readonly Stream _destination;
    private readonly Compression _compression;
    private readonly BlockingCollection<Task<Chunk>> _queue;
    /// <summary>Started with the first full chunk: a layer of one chunk (an app change) is compressed and written on the
    /// caller's thread, with no thread to start and no hand-over.</summary>
    private Task? _writer;
    private readonly CancellationTokenSource _failed;
    private readonly Sha256Hasher _diffHash = new Sha256Hasher();
    /// <summary>Null when the destination hashes what it is given (<see cref="ISha256Destination"/>).</summary>
    private readonly Sha256Hasher? _blobHash;
    /// <summary>The first chunk's buffer starts this small and doubles as it fills, up to <see cref="ChunkSize"/>: a layer of
    /// a few files (an app change) then allocates no 4 MiB arrays, which go to the large object heap, whose second one
    /// set off a blocking full collection (1.6-2 ms of a 35 ms build). Chunk boundaries do not change.</summary>
    private const int FirstBufferSize = 64 << 10;
    private byte[] _current = ArrayPool<byte>.Shared.Rent(FirstBufferSize);
    private int _filled;
    private long _compressedSize;
    private long _diffHashTicks;
    private long _blobHashTicks;
    private bool _completed;

    [ThreadStatic] private static Compressor? t_zstd;
    [ThreadStatic] private static byte[]? t_sample;

    private sealed record Chunk(byte[] Raw, int RawLength, byte[] Compressed, int CompressedLength);

    public ParallelCompressStream(Stream destination, Compression compression, CancellationToken cancellationToken)
    {
        _destination = destination;
        _blobHash = destination is ISha256Destination ? null : new Sha256Hasher();
        _compression = compression;
        _failed = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _queue = new BlockingCollection<Task<Chunk>>(Math.Max(2, Environment.ProcessorCount) * 2);
    }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        while (buffer.Length > 0)
        {
            int room = Math.Min(_current.Length, ChunkSize);
            if (_filled == room)
            {
                var bigger = ArrayPool<byte>.Shared.Rent(Math.Min(room * 2, ChunkSize));
                _current.AsSpan(0, _filled).CopyTo(bigger);
                ArrayPool<byte>.Shared.Return(_current);
                _current = bigger;
                room = Math.Min(_current.Length, ChunkSize);
            }
            int n = Math.Min(buffer.Length, room - _filled);
            buffer[..n].CopyTo(_current.AsSpan(_filled));
            _filled += n;
            buffer = buffer[n..];
            if (_filled == ChunkSize)
            {
                Dispatch(last: false);
            }
        }
    }

    /// <summary>Time spent hashing, both hashes' busy time added (read after <see cref="Complete"/>).</summary>
    public TimeSpan HashTime => System.Diagnostics.Stopwatch.GetElapsedTime(0, _diffHashTicks + _blobHashTicks);

    /// <summary>Flushes the last chunk, waits for every chunk to be written, returns (diffId, digest, size).</summary>
    public (byte[] DiffId, byte[] Digest, long Size) Complete()
    {
        if (_filled > 0)
        {
            if (_writer is null)
            {
                HashRaw(_current, _filled);
                WriteChunk(Compress(_current, _filled));
                _current = [];
                _filled = 0;
            }
            else
            {
                Dispatch(last: true);
            }
        }
        _completed = true;
        _queue.CompleteAdding();
        _writer?.GetAwaiter().GetResult();
        return (_diffHash.GetHashAndReset(), _blobHash?.GetHashAndReset() ?? ((ISha256Destination)_destination).Sha256SoFar(), _compressedSize);
    }

    /// <param name="last">No chunk follows: no buffer for the next one.</param>
    private void Dispatch(bool last)
    {
        byte[] raw = _current;
        int length = _filled;
        _writer ??= Task.Factory.StartNew(WriteInOrder, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        HashRaw(raw, length);
        _current = last ? [] : ArrayPool<byte>.Shared.Rent(ChunkSize);
        _filled = 0;
        var task = Task.Run(() => Compress(raw, length));
        try
        {
            _queue.Add(task, _failed.Token);
        }
        catch (OperationCanceledException)
        {
            // The writer failed or the caller cancelled: surface the writer's error if it has one.
            _writer.GetAwaiter().GetResult();
            throw;
        }
    }

    /// <summary>The diff ID is hashed on the producer's thread, and the blob digest on the writer's: the two hashes of the
    /// same bytes (incompressible data) do not queue behind each other on one thread.</summary>
    private void HashRaw(byte[] raw, int length)
    {
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        _diffHash.AppendData(raw, 0, length);
        _diffHashTicks += System.Diagnostics.Stopwatch.GetTimestamp() - started;
    }

    private Chunk Compress(byte[] raw, int length)
    {
        _failed.Token.ThrowIfCancellationRequested();
        if (_compression == Compression.Zstd)
        {
            if (LooksIncompressible(raw, length))
            {
                byte[] stored = ArrayPool<byte>.Shared.Rent(ZstdRawFrameBound(length));
                return new Chunk(raw, length, stored, WriteZstdRawFrame(raw.AsSpan(0, length), stored));
            }
            var zstd = t_zstd ??= CreateZstd();
            byte[] output = ArrayPool<byte>.Shared.Rent((int)Compressor.GetCompressBound(length));
            int written = zstd.Wrap(raw.AsSpan(0, length), output);
            return new Chunk(raw, length, output, written);
        }
        else
        {
            byte[] output = ArrayPool<byte>.Shared.Rent(length + length / 8 + 4096);
            var ms = new MemoryStream(output, 0, output.Length, writable: true);
            var level = LooksIncompressible(raw, length) ? CompressionLevel.NoCompression : CompressionLevel.Fastest;
            using (var gzip = new GZipStream(ms, level, leaveOpen: true))
            {
                gzip.Write(raw, 0, length);
            }
            return new Chunk(raw, length, output, (int)ms.Position);
        }
    }

    /// <summary>Bytes of each sample <see cref="LooksIncompressible"/> compresses.</summary>
    internal const int SampleSize = 16 << 10;

    /// <summary>Whether a chunk is stored rather than compressed: when level-1 deflate saves less than 1/64 of each of
    /// three samples (its start, middle and end). Deflate on data that is compressed already (packages' .gz files,
    /// images, random bytes) spends most of its time finding no matches and gives back no smaller output. zstd gives up
    /// sooner (its level 3 here: 3.5 ms per 4 MiB of random bytes, against deflate's tens), but still for raw blocks in the
    /// end. Chunks under 16 samples' size are always compressed. Decided by the chunk's bytes alone, so the output stays
    /// deterministic.</summary>
    internal static bool LooksIncompressible(byte[] raw, int length)
    {
        if (length < 16 * SampleSize)
        {
            return false;
        }
        byte[] sample = t_sample ??= new byte[SampleSize + (SampleSize / 8) + 1024];
        foreach (int at in (ReadOnlySpan<int>)[0, (length / 2) - (SampleSize / 2), length - SampleSize])
        {
            var ms = new MemoryStream(sample, 0, sample.Length, writable: true);
            using (var deflate = new DeflateStream(ms, CompressionLevel.Fastest, leaveOpen: true))
            {
                deflate.Write(raw, at, SampleSize);
            }
            if (ms.Position < SampleSize - (SampleSize / 64))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>Room for <see cref="WriteZstdRawFrame"/>'s frame of <paramref name="length"/> bytes.</summary>
    internal static int ZstdRawFrameBound(int length) => 9 + (3 * ((length / ZstdMaxBlock) + 1)) + length;

    private const int ZstdMaxBlock = 128 << 10;

    /// <summary>Writes <paramref name="raw"/> as one zstd frame of raw (stored) blocks, what zstd itself ends up writing
    /// for bytes it cannot compress (RFC 8878): the magic number, a single-segment frame header with the 4-byte content
    /// size (no checksum, no dictionary), then blocks of at most 128 KiB, each behind a 3-byte header (last-block bit,
    /// type 0 for raw, size). Returns the frame's length.</summary>
    internal static int WriteZstdRawFrame(ReadOnlySpan<byte> raw, Span<byte> output)
    {
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(output, 0xFD2FB528);
        output[4] = 0xA0; // Frame_Content_Size_flag 2 (4 bytes), Single_Segment_flag
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(output[5..], (uint)raw.Length);
        int at = 9;
        int done = 0;
        do
        {
            int n = Math.Min(ZstdMaxBlock, raw.Length - done);
            uint header = ((uint)n << 3) | (done + n == raw.Length ? 1u : 0u);
            output[at] = (byte)header;
            output[at + 1] = (byte)(header >> 8);
            output[at + 2] = (byte)(header >> 16);
            raw.Slice(done, n).CopyTo(output[(at + 3)..]);
            at += 3 + n;
            done += n;
        }
        while (done < raw.Length);
        return at;
    }

    private static Compressor CreateZstd()
    {
        var zstd = new Compressor(3);
        zstd.SetParameter(ZSTD_cParameter.ZSTD_c_checksumFlag, 0);
        return zstd;
    }

    private void WriteInOrder()
    {
        try
        {
            foreach (var task in _queue.GetConsumingEnumerable())
            {
                WriteChunk(task.GetAwaiter().GetResult());
            }
        }
        catch
        {
            _failed.Cancel();
            throw;
        }
    }

    private void WriteChunk(Chunk chunk)
    {
        if (_blobHash is not null)
        {
            long started = System.Diagnostics.Stopwatch.GetTimestamp();
            _blobHash.AppendData(chunk.Compressed, 0, chunk.CompressedLength);
            _blobHashTicks += System.Diagnostics.Stopwatch.GetTimestamp() - started;
        }
        _destination.Write(chunk.Compressed, 0, chunk.CompressedLength);
        _compressedSize += chunk.CompressedLength;
        ArrayPool<byte>.Shared.Return(chunk.Raw);
        ArrayPool<byte>.Shared.Return(chunk.Compressed);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            if (!_completed && _writer is not null)
            {
                // Abandoned (an error upstream): stop the pipeline and let in-flight chunks drain.
                _failed.Cancel();
                _queue.CompleteAdding();
                try
                {
                    _writer.GetAwaiter().GetResult();
                }
                catch (Exception)
                {
                    // the upstream error is the one the caller sees
                }
            }
            _queue.Dispose();
            _failed.Dispose();
            _diffHash.Dispose();
            _blobHash?.Dispose();
        }
        base.Dispose(disposing);
    }
}
