using Kiln.Oci;
using Kiln.Build.Layers;

namespace Kiln.Build.Exporters.Disk;

/// <summary>The kernel and initrd a disk boots, found in the image's /boot (host paths into its snapshots).</summary>
internal sealed record BootFiles(string Version, string KernelHost, long KernelBytes, string InitrdHost, long InitrdBytes)
{
    /// <summary>Finds <c>/boot/vmlinuz-VERSION</c> (the newest version when there are several) with its
    /// <c>/boot/initrd.img-VERSION</c>, and checks that <c>/sbin/init</c> exists. What is missing is a bad-input
    /// error that names the package to add.</summary>
    public static BootFiles Find(IReadOnlyList<string> layersTopFirst, string image)
    {
        try
        {
            return FindIn(layersTopFirst, image);
        }
        catch (LayerException e)
        {
            throw ExportException.BadInput($"image {image}: cannot find its kernel: {e.Message}");
        }
    }

    private static BootFiles FindIn(IReadOnlyList<string> layersTopFirst, string image)
    {
        var tree = new MergedTree(layersTopFirst);
        var bootPath = SafePath.Resolve(layersTopFirst, "/boot");
        var boot = tree.Lookup(bootPath);
        var versions = boot is { DirHosts.Count: > 0 }
            ? MergedTree.Children(boot).Select(n => n.Name).Where(n => n.StartsWith("vmlinuz-", StringComparison.Ordinal) && n.Length > 8)
                .Select(n => n["vmlinuz-".Length..]).Where(v => RegularFile(layersTopFirst, $"{bootPath}/vmlinuz-{v}") is not null).ToList()
            : [];
        if (versions.Count == 0)
        {
            throw ExportException.BadInput(
                $"image {image} has no kernel in /boot (no /boot/vmlinuz-VERSION): add `linux-image-amd64` (or `linux-image-cloud-amd64`) to a packages step to export it as a disk");
        }
        versions.Sort(CompareVersions);
        var version = versions[^1];
        var kernel = RegularFile(layersTopFirst, $"{bootPath}/vmlinuz-{version}")!;
        var initrd = RegularFile(layersTopFirst, $"{bootPath}/initrd.img-{version}")
            ?? throw ExportException.BadInput(
                $"image {image} has the kernel /boot/vmlinuz-{version} but no /boot/initrd.img-{version}: add `initramfs-tools` to the packages step that installs the kernel (the Debian kernel needs its initrd for virtio disks)");
        if (RegularFile(layersTopFirst, "/sbin/init") is null)
        {
            throw ExportException.BadInput(
                $"image {image} has no /sbin/init, so its disk could not boot: add `systemd-sysv` (or another init) to a packages step");
        }
        return new BootFiles(version, kernel.HostPath, new FileInfo(kernel.HostPath).Length, initrd.HostPath, new FileInfo(initrd.HostPath).Length);
    }

    /// <summary>The kernel version with the SHA-256 of kernel and initrd: equal identities boot the same.</summary>
    public async Task<string> IdentityAsync(CancellationToken ct)
    {
        using var sha = new Sha256Hasher();
        foreach (var path in new[] { KernelHost, InitrdHost })
        {
            var stream = new FileStream(path, new FileStreamOptions { Mode = FileMode.Open, Access = FileAccess.Read, Options = FileOptions.Asynchronous | FileOptions.SequentialScan });
            await using (stream.ConfigureAwait(false))
            {
                var buffer = new byte[1 << 20];
                int n;
                while ((n = await stream.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
                {
                    sha.AppendData(buffer, 0, n);
                }
            }
        }
        return $"{Version} sha256:{Convert.ToHexStringLower(sha.GetHashAndReset())}";
    }

    private static ImageEntry? RegularFile(IReadOnlyList<string> layers, string path) =>
        SafePath.Lookup(layers, SafePath.Resolve(layers, path)) is { Kind: ImageEntryKind.File } e ? e : null;

    /// <summary>Compares kernel versions piece by piece: runs of digits as numbers, the rest as text
    /// (6.1.0-27-cloud-amd64 is newer than 6.1.0-9-cloud-amd64).</summary>
    internal static int CompareVersions(string a, string b)
    {
        int i = 0, j = 0;
        while (i < a.Length && j < b.Length)
        {
            if (char.IsAsciiDigit(a[i]) && char.IsAsciiDigit(b[j]))
            {
                int si = i, sj = j;
                while (i < a.Length && char.IsAsciiDigit(a[i]))
                {
                    i++;
                }
                while (j < b.Length && char.IsAsciiDigit(b[j]))
                {
                    j++;
                }
                var na = a[si..i].TrimStart('0');
                var nb = b[sj..j].TrimStart('0');
                int c = na.Length != nb.Length ? na.Length.CompareTo(nb.Length) : string.CompareOrdinal(na, nb);
                if (c != 0)
                {
                    return c;
                }
            }
            else
            {
                if (a[i] != b[j])
                {
                    return a[i].CompareTo(b[j]);
                }
                i++;
                j++;
            }
        }
        return (a.Length - i).CompareTo(b.Length - j);
    }
}
