using System.Buffers.Binary;

namespace Kiln.Build.Exporters.Disk;

/// <summary>A byte range of a disk.</summary>
internal readonly record struct ByteRange(long Offset, long Length)
{
    public long End => Offset + Length;
}

/// <summary>Reads which blocks an incremental disk update wrote, from the undo file debugfs keeps with <c>-z</c>
/// (e2fsprogs' E2UNDO02 format: a header, then key blocks each followed by the old content of the blocks its keys
/// name). Only the keys are read: block number and length of each block written, plus the primary superblock, which
/// the format keeps apart. Whatever does not look exactly like that format is refused, and the caller writes its
/// output in full.</summary>
internal static class DebugfsUndo
{
    private const uint KeyBlockMagic = 0xCADECADE;
    private const uint StateFinished = 0x1;
    private const int HeaderBytes = 512;
    private const int KeyBytes = 16;
    private const int KeyBlockHeaderBytes = 16;

    /// <summary>The ranges the update wrote, as offsets in the disk (the filesystem starts at <paramref name="fsOffset"/>),
    /// sorted, with touching ranges merged.</summary>
    /// <exception cref="IncrementalDeclinedException">when the file is not a finished E2UNDO02 undo file.</exception>
    public static IReadOnlyList<ByteRange> WrittenRanges(string undoFile, long fsOffset)
    {
        using var file = new FileStream(undoFile, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.RandomAccess);
        var header = new byte[HeaderBytes];
        ReadAt(file, 0, header);
        if (!header.AsSpan(0, 8).SequenceEqual("E2UNDO02"u8))
        {
            throw Declined("it does not start with E2UNDO02");
        }
        ulong keys = BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(8));
        ulong keyOffset = BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(24));
        uint blockSize = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(32));
        uint state = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(44));
        if (blockSize is < 1024 or > 65536 || (blockSize & (blockSize - 1)) != 0)
        {
            throw Declined($"its block size {blockSize} is not a power of two from 1024 to 65536");
        }
        if ((state & StateFinished) == 0)
        {
            throw Declined("debugfs did not finish it");
        }
        long keysPerBlock = blockSize / KeyBytes - 1;
        var block = new byte[blockSize];
        // The primary superblock (bytes 1024-2047 of the filesystem) is not among the keys: the undo file keeps its old
        // copy apart (at super_offset), and debugfs rewrites it on every close. The first block is taken whole.
        var ranges = new List<ByteRange> { new(fsOffset, Math.Max(blockSize, 2048)) };
        long position = checked((long)keyOffset);
        ulong left = keys;
        while (left > 0)
        {
            ReadAt(file, checked(position * blockSize), block);
            if (BinaryPrimitives.ReadUInt32LittleEndian(block) != KeyBlockMagic)
            {
                throw Declined($"block {position} is not a key block");
            }
            long inBlock = (long)Math.Min(left, (ulong)keysPerBlock);
            long dataBlocks = 0;
            for (int i = 0; i < inBlock; i++)
            {
                var key = block.AsSpan(KeyBlockHeaderBytes + (i * KeyBytes), KeyBytes);
                ulong fsBlock = BinaryPrimitives.ReadUInt64LittleEndian(key);
                uint size = BinaryPrimitives.ReadUInt32LittleEndian(key[12..]);
                if (size == 0 || fsBlock > (ulong)(long.MaxValue / blockSize))
                {
                    throw Declined($"key {i} of block {position} is malformed");
                }
                ranges.Add(new ByteRange(checked(fsOffset + ((long)fsBlock * blockSize)), size));
                dataBlocks += (size + blockSize - 1) / blockSize;
            }
            position = checked(position + 1 + dataBlocks);
            left -= (ulong)inBlock;
        }
        return Merge(ranges);
    }

    /// <summary>Sorts ranges and merges those that overlap or touch.</summary>
    public static IReadOnlyList<ByteRange> Merge(IEnumerable<ByteRange> ranges)
    {
        var merged = new List<ByteRange>();
        foreach (var r in ranges.OrderBy(r => r.Offset))
        {
            if (merged.Count > 0 && r.Offset <= merged[^1].End)
            {
                var last = merged[^1];
                merged[^1] = last with { Length = Math.Max(last.End, r.End) - last.Offset };
            }
            else
            {
                merged.Add(r);
            }
        }
        return merged;
    }

    private static void ReadAt(FileStream file, long offset, byte[] buffer)
    {
        if (offset < 0 || offset + buffer.Length > file.Length)
        {
            throw Declined($"it ends before offset {offset + buffer.Length}");
        }
        file.Position = offset;
        file.ReadExactly(buffer);
    }

    private static IncrementalDeclinedException Declined(string why) => new($"cannot read debugfs's undo file: {why}");
}
