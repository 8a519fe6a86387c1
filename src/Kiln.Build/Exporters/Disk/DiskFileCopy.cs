using Kiln.Build.Sandbox;

namespace Kiln.Build.Exporters.Disk;

/// <summary>A raw copy of a disk file a user gives (e.g. <c>kiln test --phase vm --disk out/server.qcow2</c>), so the
/// disk that ships is the one that boots: qcow2 is converted with qemu-img, raw is copied sparsely.</summary>
public static class DiskFileCopy
{
    private static readonly byte[] Qcow2Magic = [(byte)'Q', (byte)'F', (byte)'I', 0xfb];

    public static async Task ToRawAsync(string source, string target, CancellationToken ct)
    {
        var head = new byte[512];
        int read;
        try
        {
            await using var fs = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, 1, useAsync: true);
            read = await fs.ReadAtLeastAsync(head, head.Length, throwOnEndOfStream: false, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw ExportException.BadInput($"cannot read the disk {source}: {e.Message}");
        }
        if (read >= 4 && head.AsSpan(0, 4).SequenceEqual(Qcow2Magic))
        {
            await HostTool.CheckAsync($"converting {source} to raw", HostPrograms.QemuImg.Name, ["convert", "-q", "-f", "qcow2", "-O", "raw", source, target], ct).ConfigureAwait(false);
            return;
        }
        if (read == 512 && head[510] == 0x55 && head[511] == 0xAA)
        {
            await HostTool.CheckAsync($"copying {source}", HostPrograms.Cp.Name, ["--sparse=always", source, target], ct).ConfigureAwait(false);
            return;
        }
        throw ExportException.BadInput($"{source} is neither a qcow2 disk nor a raw disk with a partition table (a Vagrant box holds its disk as box.img)");
    }
}
