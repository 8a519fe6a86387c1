using System.Buffers.Binary;
using Kiln.Build.Testing.Vm;

namespace Kiln.Build.Tests.Testing.Vm;

public sealed class MbrPartitionTableTests
{
    private static byte[] Sector(params (int Slot, byte Type, bool Boot, uint Start, uint Sectors)[] entries)
    {
        var s = new byte[512];
        foreach (var e in entries)
        {
            int at = 446 + (16 * e.Slot);
            s[at] = e.Boot ? (byte)0x80 : (byte)0;
            s[at + 4] = e.Type;
            BinaryPrimitives.WriteUInt32LittleEndian(s.AsSpan(at + 8), e.Start);
            BinaryPrimitives.WriteUInt32LittleEndian(s.AsSpan(at + 12), e.Sectors);
        }
        s[510] = 0x55;
        s[511] = 0xAA;
        return s;
    }

    [Fact]
    public void Reads_the_used_primary_entries_with_their_offsets()
    {
        var parts = MbrPartitionTable.Parse(Sector((0, 0x0C, true, 2048, 196608), (1, 0x83, false, 198656, 3145728)));
        Assert.Equal(
            [new MbrPartition(1, 0x0C, true, 2048, 196608), new MbrPartition(2, 0x83, false, 198656, 3145728)],
            parts);
        Assert.Equal(198656L * 512, parts[1].StartByte);
        Assert.Equal(parts[1], MbrPartitionTable.RootPartition(parts));
    }

    [Fact]
    public void Takes_the_only_Linux_partition_when_partition_2_is_not_one()
    {
        var parts = MbrPartitionTable.Parse(Sector((0, 0x83, true, 2048, 1000)));
        Assert.Equal(1, MbrPartitionTable.RootPartition(parts).Number);
    }

    [Fact]
    public void Rejects_a_sector_without_the_signature_a_GPT_disk_and_a_disk_without_a_Linux_partition()
    {
        var unsigned = Sector((1, 0x83, false, 2048, 1000));
        unsigned[511] = 0;
        Assert.Contains("no MBR", Assert.Throws<VmException>(() => MbrPartitionTable.Parse(unsigned)).Message);
        Assert.Contains("GPT", Assert.Throws<VmException>(() => MbrPartitionTable.Parse(Sector((0, 0xEE, false, 1, 100000)))).Message);
        var fatOnly = MbrPartitionTable.Parse(Sector((0, 0x0C, true, 2048, 1000)));
        Assert.Contains("no Linux", Assert.Throws<VmException>(() => MbrPartitionTable.RootPartition(fatOnly)).Message);
        var twoLinux = MbrPartitionTable.Parse(Sector((0, 0x83, true, 2048, 1000), (2, 0x83, false, 4096, 1000)));
        Assert.Contains("2 Linux partitions", Assert.Throws<VmException>(() => MbrPartitionTable.RootPartition(twoLinux)).Message);
    }

    [Fact]
    public async Task Finds_the_ext4_root_of_a_disk_sfdisk_made_and_refuses_one_without_a_filesystem_there()
    {
        using var dir = new ScratchDir();
        var disk = VmTestSupport.TinyDisk(dir.Path, systemd: false);
        var root = await MbrPartitionTable.FindRootAsync(disk, CancellationToken.None);
        Assert.Equal((2, 10240L * 512), (root.Number, root.StartByte));

        var blank = Path.Combine(dir.Path, "blank.raw");
        VmTestSupport.Sh($"truncate -s 16M '{blank}' && printf 'label: dos\\nstart=2048, type=83\\n' | sfdisk -q '{blank}'");
        var e = await Assert.ThrowsAsync<VmException>(() => MbrPartitionTable.FindRootAsync(blank, CancellationToken.None));
        Assert.Contains("partition 1 (at byte 1048576) holds no ext4 filesystem", e.Message);
    }
}
