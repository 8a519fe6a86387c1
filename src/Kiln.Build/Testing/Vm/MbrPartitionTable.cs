using System.Buffers.Binary;

namespace Kiln.Build.Testing.Vm;

/// <summary>One primary partition of an MBR partition table (numbered from 1), in 512-byte sectors.</summary>
public sealed record MbrPartition(int Number, byte Type, bool Bootable, long StartSector, long Sectors)
{
    public const int SectorSize = 512;

    public long StartByte => StartSector * SectorSize;

    public long Bytes => Sectors * SectorSize;
}

/// <summary>Reads the four primary entries of a disk's MBR and finds its ext4 root partition.</summary>
public static class MbrPartitionTable
{
    private const byte Linux = 0x83;
    private const byte GptProtective = 0xEE;

    /// <summary>The used primary partitions of <paramref name="sector0"/> (the disk's first 512 bytes).</summary>
    public static IReadOnlyList<MbrPartition> Parse(ReadOnlySpan<byte> sector0)
    {
        if (sector0.Length < MbrPartition.SectorSize || sector0[510] != 0x55 || sector0[511] != 0xAA)
        {
            throw new VmException("the disk has no MBR partition table (no 0x55AA signature in its first sector)");
        }
        var partitions = new List<MbrPartition>();
        for (int i = 0; i < 4; i++)
        {
            var entry = sector0.Slice(446 + (16 * i), 16);
            byte type = entry[4];
            uint start = BinaryPrimitives.ReadUInt32LittleEndian(entry[8..]);
            uint sectors = BinaryPrimitives.ReadUInt32LittleEndian(entry[12..]);
            if (type != 0 && sectors != 0)
            {
                partitions.Add(new MbrPartition(i + 1, type, entry[0] == 0x80, start, sectors));
            }
        }
        if (partitions.Any(p => p.Type == GptProtective))
        {
            throw new VmException("the disk has a GPT partition table; the VM check reads MBR disks (as kiln export writes them)");
        }
        return partitions;
    }

    /// <summary>The root filesystem's partition: partition 2 when it is a Linux partition (the layout kiln export
    /// writes), else the only Linux partition.</summary>
    public static MbrPartition RootPartition(IReadOnlyList<MbrPartition> partitions)
    {
        if (partitions.FirstOrDefault(p => p.Number == 2 && p.Type == Linux) is { } second)
        {
            return second;
        }
        var linux = partitions.Where(p => p.Type == Linux).ToList();
        return linux.Count == 1
            ? linux[0]
            : throw new VmException(linux.Count == 0
                ? "the disk has no Linux (type 0x83) partition to hold the root filesystem"
                : $"the disk has {linux.Count} Linux partitions and none is partition 2: which one is root is unclear");
    }

    /// <summary>Reads the disk's table and checks that its root partition holds an ext2/3/4 filesystem
    /// (superblock magic 0xEF53) inside the disk.</summary>
    public static async Task<MbrPartition> FindRootAsync(string diskPath, CancellationToken ct)
    {
        await using var disk = new FileStream(diskPath, FileMode.Open, FileAccess.Read, FileShare.Read, 4096, useAsync: true);
        var sector0 = new byte[MbrPartition.SectorSize];
        await ReadAtAsync(disk, 0, sector0, "its partition table", ct).ConfigureAwait(false);
        var root = RootPartition(Parse(sector0));
        if (root.StartByte + root.Bytes > disk.Length)
        {
            throw new VmException($"partition {root.Number} ends past the end of the disk ({root.StartByte + root.Bytes} > {disk.Length} bytes)");
        }
        var magic = new byte[2];
        await ReadAtAsync(disk, root.StartByte + 1024 + 56, magic, $"partition {root.Number}'s superblock", ct).ConfigureAwait(false);
        if (BinaryPrimitives.ReadUInt16LittleEndian(magic) != 0xEF53)
        {
            throw new VmException($"partition {root.Number} (at byte {root.StartByte}) holds no ext4 filesystem");
        }
        return root;
    }

    private static async Task ReadAtAsync(FileStream disk, long offset, byte[] buffer, string what, CancellationToken ct)
    {
        disk.Position = offset;
        try
        {
            await disk.ReadExactlyAsync(buffer, ct).ConfigureAwait(false);
        }
        catch (EndOfStreamException e)
        {
            throw new VmException($"the disk is too short to hold {what}", e);
        }
    }
}
