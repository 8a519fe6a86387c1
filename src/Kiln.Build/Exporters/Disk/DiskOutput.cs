using System.Formats.Tar;
using System.Globalization;
using System.Text;
using Kiln.Build.Sandbox;

namespace Kiln.Build.Exporters.Disk;

/// <summary>Writes a finished raw disk in the requested form: raw (a sparse copy), qcow2 (qemu-img) or a Vagrant box
/// for the libvirt provider.</summary>
internal static class DiskOutput
{
    public static async Task WriteAsync(ExportFormat format, string rawDisk, long diskBytes, string target, string workDir, DateTimeOffset epoch, CancellationToken ct)
    {
        switch (format)
        {
            case ExportFormat.Raw:
                await HostTool.CheckAsync("copying the raw disk", HostPrograms.Cp.Name, ["--reflink=auto", "--sparse=always", rawDisk, target], ct).ConfigureAwait(false);
                break;
            case ExportFormat.Qcow2:
                await Qcow2Async(rawDisk, target, ct).ConfigureAwait(false);
                break;
            case ExportFormat.Vagrant:
                var boxImg = Path.Combine(workDir, "box.img");
                await Qcow2Async(rawDisk, boxImg, ct).ConfigureAwait(false);
                await WriteBoxAsync(boxImg, diskBytes, target, epoch, ct).ConfigureAwait(false);
                File.Delete(boxImg);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(format), format, "not a disk format");
        }
    }

    /// <summary>Most ranges one in-place update writes; more is not an app change, and a full write is as quick.</summary>
    public const int MaxPatchRanges = 4096;

    /// <summary>Brings the qcow2 <paramref name="target"/>, written from an earlier state of <paramref name="rawDisk"/>,
    /// up to date by writing only <paramref name="ranges"/> of the raw disk into it, in place, with qemu-io, then
    /// flushing it. qemu-io takes qemu's image lock, so a VM running from the file makes this fail rather than change
    /// the disk under it. Returns null and the bytes written, or why it could not (the file may then be half
    /// updated: the caller writes it in full).</summary>
    public static async Task<(long Written, string? Failed)> PatchQcow2Async(string rawDisk, IReadOnlyList<ByteRange> ranges, string target,
        string workDir, CancellationToken ct)
    {
        if (ranges.Count > MaxPatchRanges)
        {
            return (0, $"the update wrote {ranges.Count} ranges (more than {MaxPatchRanges})");
        }
        var chunks = Path.Combine(workDir, "qcow2-patch");
        Directory.CreateDirectory(chunks);
        var args = new List<string> { "-f", "qcow2" };
        long written = 0;
        using (var raw = new FileStream(rawDisk, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.RandomAccess))
        {
            for (int i = 0; i < ranges.Count; i++)
            {
                var (offset, length) = (ranges[i].Offset, ranges[i].Length);
                if (offset < 0 || offset + length > raw.Length)
                {
                    return (0, $"a written range ({offset}+{length}) lies outside the disk");
                }
                // qemu-io's write -s fills the range from the start of a file: one file per range.
                var chunk = Path.Combine(chunks, i.ToString(CultureInfo.InvariantCulture));
                var bytes = new byte[length];
                raw.Position = offset;
                await raw.ReadExactlyAsync(bytes, ct).ConfigureAwait(false);
                await File.WriteAllBytesAsync(chunk, bytes, ct).ConfigureAwait(false);
                args.Add("-c");
                args.Add(string.Create(CultureInfo.InvariantCulture, $"write -q -s {chunk} {offset} {length}"));
                written += length;
            }
        }
        args.AddRange(["-c", "flush", target]);
        var r = await HostTool.RunAsync(HostPrograms.QemuIo.Name, args, null, ct).ConfigureAwait(false);
        // qemu-io reports a failed command on stderr and may still exit 0: any output is a failure.
        return r.ExitCode != 0 || r.Output.Trim().Length > 0
            ? (0, $"{HostPrograms.QemuIo} could not update {target} in place (exit status {r.ExitCode}): {HostTool.Tail(r.Output, 3)}")
            : (written, null);
    }

    private static Task Qcow2Async(string raw, string target, CancellationToken ct) =>
        HostTool.CheckAsync("converting the disk to qcow2", HostPrograms.QemuImg.Name, ["convert", "-q", "-f", "raw", "-O", "qcow2", raw, target], ct);

    /// <summary>The box's metadata.json: vagrant-libvirt reads provider, format and the virtual size in whole GB.</summary>
    public static string Metadata(long diskBytes) => string.Create(CultureInfo.InvariantCulture,
        $"{{\"provider\":\"libvirt\",\"format\":\"qcow2\",\"virtual_size\":{(diskBytes + (1L << 30) - 1) >> 30}}}\n");

    /// <summary>The box's Vagrantfile: defaults vagrant-libvirt merges under a project's own Vagrantfile.</summary>
    public const string Vagrantfile = """
# Written by kiln: defaults for this box under the libvirt provider; a project's Vagrantfile overrides them.
# Kiln added to the box (not to the image) openssh-server, sudo and the user vagrant with Vagrant's insecure
# key, which `vagrant up` replaces. Shared folders are off: they need rsync or NFS in the guest. The guest
# must bring up its network by DHCP. The kernel logs to the serial console (console=ttyS0): `virsh console`.
Vagrant.configure("2") do |config|
  config.vm.synced_folder ".", "/vagrant", disabled: true
  config.vm.provider :libvirt do |libvirt|
    libvirt.driver = "kvm"
    libvirt.disk_bus = "virtio"
    libvirt.memory = 1024
  end
end

""";

    /// <summary>A box as vagrant-libvirt documents it: a tar of metadata.json, Vagrantfile and box.img (qcow2).
    /// Uncompressed: the qcow2 holds only used clusters and gzip would cost seconds per hundred MB.</summary>
    private static async Task WriteBoxAsync(string boxImg, long diskBytes, string target, DateTimeOffset epoch, CancellationToken ct)
    {
        var output = new FileStream(target, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Options = FileOptions.Asynchronous });
        await using (output.ConfigureAwait(false))
        {
            var tar = new TarWriter(output, TarEntryFormat.Gnu, leaveOpen: true);
            await using (tar.ConfigureAwait(false))
            {
                await AddAsync(tar, "metadata.json", new MemoryStream(Encoding.UTF8.GetBytes(Metadata(diskBytes))), epoch, ct).ConfigureAwait(false);
                await AddAsync(tar, "Vagrantfile", new MemoryStream(Encoding.UTF8.GetBytes(Vagrantfile)), epoch, ct).ConfigureAwait(false);
                var img = new FileStream(boxImg, new FileStreamOptions { Mode = FileMode.Open, Access = FileAccess.Read, Options = FileOptions.Asynchronous | FileOptions.SequentialScan });
                await using (img.ConfigureAwait(false))
                {
                    await AddAsync(tar, "box.img", img, epoch, ct).ConfigureAwait(false);
                }
            }
        }
    }

    private static Task AddAsync(TarWriter tar, string name, Stream data, DateTimeOffset epoch, CancellationToken ct) =>
        tar.WriteEntryAsync(new GnuTarEntry(TarEntryType.RegularFile, name)
        {
            DataStream = data,
            Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
            ModificationTime = epoch,
            AccessTime = epoch,
            ChangeTime = epoch,
            Uid = 0,
            Gid = 0,
            UserName = "root",
            GroupName = "root",
        }, ct);
}
