using System.Text.Json;

namespace Kiln.Cli.Tests;

/// <summary>Reads exported disks the way an outside tool would: sfdisk for the partition table, qemu-img for qcow2,
/// e2fsck for the root filesystem.</summary>
public static class DiskFiles
{
    /// <summary>The byte offset of the second partition (the ext4 root) of a raw disk, from sfdisk's JSON dump.</summary>
    public static long RootPartitionOffset(string rawDisk)
    {
        var r = KilnProcess.Tool("sfdisk", "--json", rawDisk);
        Assert.True(r.ExitCode == 0, r.All);
        using var doc = JsonDocument.Parse(r.Stdout);
        var table = doc.RootElement.GetProperty("partitiontable");
        var sectorSize = table.TryGetProperty("sectorsize", out var ss) ? ss.GetInt64() : 512;
        var partitions = table.GetProperty("partitions").EnumerateArray().ToList();
        Assert.Equal(2, partitions.Count);
        return partitions[1].GetProperty("start").GetInt64() * sectorSize;
    }

    /// <summary>A raw copy of a qcow2 disk in <paramref name="dir"/>.</summary>
    public static string ToRaw(string qcow2, TempDir dir, string name)
    {
        var raw = dir.Sub(name);
        var r = KilnProcess.Tool("qemu-img", "convert", "-f", "qcow2", "-O", "raw", qcow2, raw);
        Assert.True(r.ExitCode == 0, r.All);
        return raw;
    }

    /// <summary>Asserts that <c>e2fsck -fn</c> finds nothing to fix in the root partition of a raw disk.</summary>
    public static void AssertRootFsClean(string rawDisk)
    {
        var r = KilnProcess.Tool("e2fsck", "-fn", $"{rawDisk}?offset={RootPartitionOffset(rawDisk)}");
        Assert.True(r.ExitCode == 0, "e2fsck -fn found problems:\n" + r.All);
    }

    /// <summary>True when a qemu process whose command line names <paramref name="text"/> (e.g. a store path) is running.</summary>
    public static bool AnyQemuRunning(string text) =>
        KilnProcess.Tool("pgrep", "-f", "qemu-system").Stdout.Length > 0
        && KilnProcess.Tool("pgrep", "-af", "qemu-system").Stdout.Contains(text, StringComparison.Ordinal);
}
