using System.Globalization;
using System.Text;
using Kiln.Oci;

namespace Kiln.Build.Exporters.Disk;

/// <summary>Where the partitions of a disk lie: an MBR, a FAT boot partition at 1 MiB, the ext4 root after it,
/// all aligned to 1 MiB.</summary>
internal sealed record DiskLayout(long BootOffset, long BootBytes, long RootOffset, long RootBytes, long DiskBytes)
{
    public const long MiB = 1 << 20;
    private const long Alignment = MiB;

    /// <summary>Headroom of an automatic size: the root gets its used space plus 30 % plus 256 MiB.</summary>
    public static long AutomaticRootBytes(long usedBytes) => RoundUp(usedBytes + usedBytes * 3 / 10 + 256 * MiB);

    /// <summary>The least a root can be and still take the tree (ext4's inode tables and journal included).</summary>
    public static long MinimumRootBytes(long usedBytes) => RoundUp(usedBytes + usedBytes / 10 + 96 * MiB);

    /// <summary>The boot partition holds kernel, initrd and SYSLINUX with room to spare; at least 32 MiB.</summary>
    public static long BootBytesFor(BootFiles boot) => Math.Max(32 * MiB, RoundUp((boot.KernelBytes + boot.InitrdBytes) * 11 / 10 + 8 * MiB));

    public static DiskLayout Automatic(long bootBytes, long usedBytes)
    {
        long root = AutomaticRootBytes(usedBytes);
        return new DiskLayout(Alignment, bootBytes, Alignment + bootBytes, root, Alignment + bootBytes + root);
    }

    /// <summary>A disk of exactly <paramref name="diskBytes"/>; the root takes what the boot partition leaves
    /// (whole MiB). Too small for the tree is a bad-input error.</summary>
    public static DiskLayout Sized(long diskBytes, long bootBytes, long usedBytes, string image)
    {
        long root = (diskBytes - Alignment - bootBytes) / MiB * MiB;
        long need = MinimumRootBytes(usedBytes) + Alignment + bootBytes;
        if (root < MinimumRootBytes(usedBytes))
        {
            throw ExportException.BadInput(
                $"a disk of {Mib(diskBytes)} is too small for image {image}: its files need at least {Mib(need)} ({Mib(usedBytes)} of files); give a larger size or none (used space plus headroom)");
        }
        return new DiskLayout(Alignment, bootBytes, Alignment + bootBytes, root, diskBytes);
    }

    /// <summary>The sfdisk script: a DOS label with a fixed id, the FAT partition (bootable), the Linux root.</summary>
    public string SfdiskScript(uint diskId) => string.Create(CultureInfo.InvariantCulture,
        $"label: dos\nlabel-id: 0x{diskId:x8}\nunit: sectors\n\nstart={BootOffset / 512}, size={BootBytes / 512}, type=c, bootable\nstart={RootOffset / 512}, size={RootBytes / 512}, type=83\n");

    public static long RoundUp(long bytes) => (bytes + MiB - 1) / MiB * MiB;

    public static string Mib(long bytes) => string.Create(CultureInfo.InvariantCulture, $"{(bytes + MiB - 1) / MiB} MiB");
}

/// <summary>Identifiers that make a disk reproducible: derived from the image's manifest digest, so the same image
/// gives the same ext4 UUID, directory hash seed and MBR disk id.</summary>
internal static class DiskIds
{
    public static string Uuid(Digest manifest, string purpose)
    {
        var b = Sha256Hasher.HashData(Encoding.UTF8.GetBytes($"kiln disk {purpose}\n{manifest.Value}"))[..16];
        b[6] = (byte)((b[6] & 0x0f) | 0x40);
        b[8] = (byte)((b[8] & 0x3f) | 0x80);
        var h = Convert.ToHexStringLower(b);
        return $"{h[..8]}-{h[8..12]}-{h[12..16]}-{h[16..20]}-{h[20..]}";
    }

    public static uint DiskId(Digest manifest)
    {
        var b = Sha256Hasher.HashData(Encoding.UTF8.GetBytes($"kiln disk id\n{manifest.Value}"));
        uint id = BitConverter.ToUInt32(b, 0);
        return id == 0 ? 1 : id;
    }

    /// <summary>The FAT volume id of every boot partition (it names nothing; fixed for reproducibility).</summary>
    public const string FatVolumeId = "4b494c4e";
}
