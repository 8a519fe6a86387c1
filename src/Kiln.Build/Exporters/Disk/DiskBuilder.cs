using System.Globalization;
using Kiln.Build.Sandbox;

namespace Kiln.Build.Exporters.Disk;

/// <summary>Builds a bootable raw disk from an image's snapshots without mounting any disk or loop device.</summary>
/// <remarks>
/// Why SYSLINUX on a FAT boot partition: everything is written into plain files. <c>mkfs.vfat</c> makes the
/// partition, the mtools-based <c>syslinux --install</c> installs the loader into that file, mtools copies kernel,
/// initrd and <c>syslinux.cfg</c> in, and <c>mkfs.ext4 -d</c> fills the root from the image's merged tree (an overlay
/// mounted read-only inside a private mount namespace that dies with the tool). extlinux and grub-install both need
/// the target filesystem mounted, i.e. a loop device. A boot partition that is not the root costs nothing here: on an
/// immutable server the kernel never changes in place — a new kernel is a new image and a new disk.
/// </remarks>
internal static class DiskBuilder
{
    public static readonly string MbrCode = HostPrograms.SyslinuxMbr.Name;

    /// <summary>Used space of a merged tree as ext4 would need it (4 KiB blocks), and its entry count.</summary>
    public static (long UsedBytes, long Entries) Measure(MergedTree tree, CancellationToken ct)
    {
        long used = 4096, entries = 1;
        foreach (var node in MergedTree.Walk(tree.Root, ct))
        {
            entries++;
            var st = node.Status;
            if (st.IsRegularFile || st.IsDirectory || (st.IsSymlink && st.Size >= 60))
            {
                used += Math.Max(4096, (st.Size + 4095) / 4096 * 4096);
            }
        }
        return (used, entries);
    }

    public static string KernelCommandLine(string rootUuid) =>
        // rw: the image has no fstab to remount the root read-write, and services write (/var/log, /run is tmpfs).
        $"root=UUID={rootUuid} rw console=tty0 console=ttyS0,115200n8";

    public static string SyslinuxConfig(string rootUuid) =>
        "SERIAL 0 115200\nDEFAULT kiln\nPROMPT 0\nTIMEOUT 10\n\nLABEL kiln\n  LINUX /vmlinuz\n  INITRD /initrd.img\n" +
        $"  APPEND {KernelCommandLine(rootUuid)}\n";

    /// <summary>Writes the whole disk to <paramref name="diskPath"/> (a new sparse file) in <paramref name="workDir"/>.</summary>
    public static async Task BuildAsync(string workDir, string diskPath, DiskLayout layout, BootFiles boot, MergedTree tree,
        long entries, string rootUuid, string hashSeed, uint diskId, DateTimeOffset epoch, CancellationToken ct)
    {
        if (!File.Exists(MbrCode))
        {
            throw ExportException.Failed($"the SYSLINUX boot code {MbrCode} is missing (it comes with the Debian package {HostPrograms.SyslinuxMbr.Package})");
        }
        var env = new Dictionary<string, string>
        {
            // e2fsprogs ignores a fake time of 0 (and would stamp the clock's time): the Unix epoch becomes second 1.
            ["E2FSPROGS_FAKE_TIME"] = Math.Max(1, epoch.ToUnixTimeSeconds()).ToString(CultureInfo.InvariantCulture),
            ["SOURCE_DATE_EPOCH"] = epoch.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture),
        };
        using (var fs = new FileStream(diskPath, FileMode.CreateNew, FileAccess.Write))
        {
            fs.SetLength(layout.DiskBytes);
        }

        var script = Path.Combine(workDir, "sfdisk.script");
        await File.WriteAllTextAsync(script, layout.SfdiskScript(diskId), ct).ConfigureAwait(false);
        await HostTool.CheckAsync("writing the partition table", HostPrograms.Sh.Name,
            ["-c", $"exec {HostPrograms.Sfdisk} --quiet --no-reread --no-tell-kernel --wipe never --wipe-partitions never \"$1\" < \"$2\"", "sh", diskPath, script], ct).ConfigureAwait(false);

        await BuildRootAsync(workDir, diskPath, layout, tree, entries, rootUuid, hashSeed, env, ct).ConfigureAwait(false);

        var bootImg = Path.Combine(workDir, "boot.img");
        await BuildBootAsync(workDir, bootImg, layout.BootBytes, boot, rootUuid, env, ct).ConfigureAwait(false);
        await CopyIntoAsync(bootImg, diskPath, layout.BootOffset, ct).ConfigureAwait(false);
        File.Delete(bootImg);

        var mbr = await File.ReadAllBytesAsync(MbrCode, ct).ConfigureAwait(false);
        using (var fs = new FileStream(diskPath, FileMode.Open, FileAccess.Write))
        {
            // Boot code only: bytes 440.. hold the disk id and the partition table sfdisk wrote.
            fs.Write(mbr.AsSpan(0, Math.Min(440, mbr.Length)));
        }
    }

    private static readonly string MkfsScript = $$"""
set -eu
m="$1"; links="$2"; lower="$3"; shift 3
(cd "$links" && {{HostPrograms.Mount}} -t overlay kiln-disk -o "ro,lowerdir=$lower,{{Sandbox.OverlayLowerLinks.FixedFeatures}}" "$m") || { echo "kiln-disk: cannot mount the image's layers read-only at $m" >&2; exit 125; }
exec {{HostPrograms.MkfsExt4}} "$@"
""";

    private static async Task BuildRootAsync(string workDir, string diskPath, DiskLayout layout, MergedTree tree, long entries,
        string rootUuid, string hashSeed, Dictionary<string, string> env, CancellationToken ct)
    {
        var merged = Directory.CreateDirectory(Path.Combine(workDir, "merged")).FullName;
        // overlayfs takes a read-only mount only with two or more lower dirs: an empty one at the bottom always makes two.
        var empty = Directory.CreateDirectory(Path.Combine(workDir, "empty")).FullName;
        var lowers = tree.Layers.Append(empty).ToList();
        foreach (var dir in lowers)
        {
            if (dir.Contains(':') || dir.Contains(','))
            {
                throw ExportException.Failed($"layer path '{dir}' contains ':' or ',' which overlayfs cannot take; move the store (KILN_STORE)");
            }
        }
        var links = Path.GetFullPath(Path.Combine(workDir, "l"));
        var lowerdir = Sandbox.OverlayLowerLinks.Create(links, lowers);
        long inodes = Math.Max(layout.RootBytes / 16384, entries * 3 / 2 + 4096);
        var r = await HostTool.RunInMountNamespaceAsync(MkfsScript,
        [
            merged, links, lowerdir,
            "-q", "-F", "-T", "default", "-N", inodes.ToString(CultureInfo.InvariantCulture),
            "-U", rootUuid, "-L", "root",
            "-E", $"offset={layout.RootOffset.ToString(CultureInfo.InvariantCulture)},hash_seed={hashSeed}",
            "-d", merged,
            diskPath, (layout.RootBytes / 1024).ToString(CultureInfo.InvariantCulture) + "k",
        ], env, ct).ConfigureAwait(false);
        if (r.ExitCode != 0)
        {
            throw ExportException.Failed($"building the ext4 root filesystem with {HostPrograms.MkfsExt4} -d failed (status {r.ExitCode}){HostTool.Hint(HostPrograms.MkfsExt4.Name)}\n{HostTool.Tail(r.Output)}");
        }
    }

    private static async Task BuildBootAsync(string workDir, string bootImg, long bytes, BootFiles boot, string rootUuid,
        Dictionary<string, string> env, CancellationToken ct)
    {
        await HostTool.CheckAsync("making the FAT boot partition", HostPrograms.MkfsVfat.Name,
            ["-C", "--invariant", "-i", DiskIds.FatVolumeId, "-n", "KILNBOOT", bootImg, (bytes / 1024).ToString(CultureInfo.InvariantCulture)], ct, env).ConfigureAwait(false);
        await HostTool.CheckAsync("installing SYSLINUX into the boot partition", HostPrograms.Syslinux.Name, ["--install", bootImg], ct, env).ConfigureAwait(false);
        var cfg = Path.Combine(workDir, "syslinux.cfg");
        await File.WriteAllTextAsync(cfg, SyslinuxConfig(rootUuid), ct).ConfigureAwait(false);
        foreach (var (source, name) in new[] { (boot.KernelHost, "vmlinuz"), (boot.InitrdHost, "initrd.img"), (cfg, "syslinux.cfg") })
        {
            await HostTool.CheckAsync($"copying {name} into the boot partition", HostPrograms.Mcopy.Name, ["-i", bootImg, source, "::/" + name], ct, env).ConfigureAwait(false);
        }
    }

    /// <summary>Copies <paramref name="source"/> into <paramref name="target"/> at <paramref name="offset"/>, skipping
    /// blocks of zeros so the target stays sparse (it is new, so those blocks already read as zeros).</summary>
    public static async Task CopyIntoAsync(string source, string target, long offset, CancellationToken ct)
    {
        var input = new FileStream(source, new FileStreamOptions { Mode = FileMode.Open, Access = FileAccess.Read, Options = FileOptions.Asynchronous | FileOptions.SequentialScan });
        await using (input.ConfigureAwait(false))
        {
            var output = new FileStream(target, new FileStreamOptions { Mode = FileMode.Open, Access = FileAccess.Write, Options = FileOptions.Asynchronous });
            await using (output.ConfigureAwait(false))
            {
                var buffer = new byte[1 << 16];
                long position = offset;
                int n;
                while ((n = await input.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, ct).ConfigureAwait(false)) > 0)
                {
                    if (buffer.AsSpan(0, n).ContainsAnyExcept((byte)0))
                    {
                        output.Position = position;
                        await output.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                    }
                    position += n;
                }
            }
        }
    }
}
