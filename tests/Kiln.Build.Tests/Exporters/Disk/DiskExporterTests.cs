using System.Formats.Tar;
using System.Text.Json;
using Kiln.Build.Exporters;
using Kiln.Build.Exporters.Disk;
using Kiln.Oci;

namespace Kiln.Build.Tests.Exporters.Disk;

/// <summary>Disk exports of tiny images: layout, fsck, the ext4 tree against the image's tree, formats, bad input,
/// cancellation. Needs root (overlay and loop mounts), like the other store tests.</summary>
[Trait("Tier", "Slow")] // mkfs.ext4, e2fsck, debugfs and qemu-img on real disk files: the costliest of ./test --fast
public sealed class DiskExporterTests : IDisposable
{
    private readonly DiskTestImage _image = new();

    public void Dispose() => _image.Dispose();

    private ExportRequest Request(Descriptor manifest, ExportFormat format, string file, bool incremental = true, long? size = null) => new()
    {
        ImageName = "tiny",
        Manifest = manifest,
        Format = format,
        OutputPath = Path.Combine(_image.OutDir, file),
        AllowIncremental = incremental,
        DiskSizeBytes = size,
    };

    /// <summary>Partition starts (bytes) and the bootable flag, from sfdisk's dump of the disk.</summary>
    internal static (long Start, long Size, bool Bootable, string Type)[] Partitions(string raw)
    {
        var (code, output) = DiskTestImage.Run("sfdisk", "--json", raw);
        Assert.True(code == 0, output);
        using var doc = JsonDocument.Parse(output);
        return doc.RootElement.GetProperty("partitiontable").GetProperty("partitions").EnumerateArray()
            .Select(p => (p.GetProperty("start").GetInt64() * 512, p.GetProperty("size").GetInt64() * 512,
                p.TryGetProperty("bootable", out var b) && b.GetBoolean(), p.GetProperty("type").GetString()!))
            .ToArray();
    }

    internal static void AssertFsckClean(string raw, long rootOffset)
    {
        var (code, output) = DiskTestImage.Run("e2fsck", "-fn", $"{raw}?offset={rootOffset}");
        Assert.True(code == 0, output);
    }

    [Fact]
    public async Task A_raw_disk_has_a_bootable_FAT_partition_with_syslinux_and_a_clean_ext4_root_holding_the_image_tree()
    {
        await _image.AddBaseAsync();
        await _image.AddLayerAsync(root =>
        {
            DiskTestImage.Mk(root, "etc");
            File.WriteAllText(Path.Combine(root, "etc/motd"), "new motd\n");
            Kiln.Build.Native.LibC.MknodWhiteout(Path.Combine(root, "etc/hostname"));
        });
        var manifest = await _image.TagAsync("tiny");

        var result = await DiskExporter.ExportAsync(_image.Store, Request(manifest, ExportFormat.Raw, "tiny.raw"), null, CancellationToken.None);

        Assert.False(result.Incremental);
        var raw = result.OutputPath;
        var parts = Partitions(raw);
        Assert.Equal(2, parts.Length);
        Assert.Equal(1L << 20, parts[0].Start);
        Assert.True(parts[0].Bootable);
        Assert.Equal("c", parts[0].Type);
        Assert.Equal("83", parts[1].Type);
        Assert.Equal(0, parts[1].Start % (1L << 20));
        Assert.Equal(new FileInfo(raw).Length, parts[1].Start + parts[1].Size);

        // MBR boot code is SYSLINUX's; the boot partition holds its loader, config, kernel and initrd.
        var mbr = File.ReadAllBytes(Kiln.Build.Exporters.Disk.DiskBuilder.MbrCode);
        var head = new byte[440];
        using (var f = File.OpenRead(raw))
        {
            f.ReadExactly(head);
        }
        Assert.Equal(mbr.AsSpan(0, 440).ToArray(), head);
        var fat = $"{raw}@@{parts[0].Start}";
        var (code, dir) = DiskTestImage.Run("mdir", "-a", "-b", "-i", fat, "::/");
        Assert.True(code == 0, dir);
        foreach (var name in new[] { "ldlinux.sys", "ldlinux.c32", "syslinux.cfg", "vmlinuz", "initrd.img" })
        {
            Assert.Contains("::/" + name, dir, StringComparison.OrdinalIgnoreCase);
        }
        var cfgOut = Path.Combine(_image.OutDir, "syslinux.cfg");
        Assert.Equal(0, DiskTestImage.Run("mcopy", "-i", fat, "::/syslinux.cfg", cfgOut).ExitCode);
        var cfg = File.ReadAllText(cfgOut);
        var (_, uuid) = DiskTestImage.Run("blkid", "-p", "-o", "value", "-s", "UUID", "-O", parts[1].Start.ToString(System.Globalization.CultureInfo.InvariantCulture), raw);
        Assert.Contains($"root=UUID={uuid.Trim()} rw console=tty0 console=ttyS0,115200n8", cfg);
        Assert.Contains("SERIAL 0 115200", cfg);
        // The newest kernel of the two, byte for byte.
        var kernelOut = Path.Combine(_image.OutDir, "vmlinuz");
        Assert.Equal(0, DiskTestImage.Run("mcopy", "-i", fat, "::/vmlinuz", kernelOut).ExitCode);
        Assert.Equal(DiskTestImage.Bytes(310_000, 2), File.ReadAllBytes(kernelOut));

        AssertFsckClean(raw, parts[1].Start);
        var imageTree = DiskTree.OfImage(_image.SnapshotsTopFirst);
        Assert.Contains(imageTree, l => l.StartsWith("etc/motd\tf\t644\t0\t0\t", StringComparison.Ordinal));
        Assert.Contains(imageTree, l => l.StartsWith("home/user/secret\tf\t600\t1000\t1000\t", StringComparison.Ordinal));
        Assert.DoesNotContain(imageTree, l => l.StartsWith("etc/hostname\t", StringComparison.Ordinal));
        DiskTree.AssertSame(imageTree, DiskTree.OfDisk(raw, parts[1].Start));
        var (_, xattr) = DiskTestImage.Run("debugfs", "-R", "ea_get /etc/cap user.kiln-test", $"{raw}?offset={parts[1].Start}");
        Assert.Contains("value", xattr);
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(_image.Test.Root, "kiln", "tmp")));
    }

    [Fact]
    public async Task An_image_of_70_layers_exports_though_their_snapshot_paths_are_longer_than_a_page()
    {
        await _image.AddBaseAsync();
        for (int i = 0; i < 70; i++)
        {
            await _image.AddLayerAsync(root => File.WriteAllText(Path.Combine(root, $"layer-{i:D2}"), $"{i}\n"));
        }
        Assert.True(_image.SnapshotsTopFirst.Sum(p => p.Length + 1) > 4096);
        var manifest = await _image.TagAsync("tall");

        var result = await DiskExporter.ExportAsync(_image.Store, Request(manifest, ExportFormat.Raw, "tall.raw"), null, CancellationToken.None);

        var parts = Partitions(result.OutputPath);
        AssertFsckClean(result.OutputPath, parts[1].Start);
        foreach (var i in new[] { 0, 35, 69 })
        {
            var (code, text) = DiskTestImage.Run("debugfs", "-R", $"cat /layer-{i:D2}", $"{result.OutputPath}?offset={parts[1].Start}");
            Assert.True(code == 0, text);
            Assert.Contains($"{i}\n", text);
        }
    }

    [Fact]
    public async Task The_same_image_gives_the_same_disk_bytes()
    {
        await _image.AddBaseAsync();
        var manifest = await _image.TagAsync("tiny");
        var a = await DiskExporter.ExportAsync(_image.Store, Request(manifest, ExportFormat.Raw, "a.raw", incremental: false), null, CancellationToken.None);
        var b = await DiskExporter.ExportAsync(_image.Store, Request(manifest, ExportFormat.Raw, "b.raw", incremental: false), null, CancellationToken.None);
        var (_, sums) = DiskTestImage.Run("sha256sum", a.OutputPath, b.OutputPath);
        var lines = sums.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var (_, differ) = DiskTestImage.Run("sh", "-c", "cmp -l \"$0\" \"$1\" | head -20", a.OutputPath, b.OutputPath);
        Assert.True(lines[0][..64] == lines[1][..64], "bytes differ (offset, octal values):\n" + differ);
    }

    [Fact]
    public async Task A_qcow2_disk_passes_qemu_img_check_and_has_the_raw_disks_size()
    {
        await _image.AddBaseAsync();
        var manifest = await _image.TagAsync("tiny");
        var q = await DiskExporter.ExportAsync(_image.Store, Request(manifest, ExportFormat.Qcow2, "tiny.qcow2"), null, CancellationToken.None);
        var (code, check) = DiskTestImage.Run("qemu-img", "check", q.OutputPath);
        Assert.True(code == 0, check);
        var (_, info) = DiskTestImage.Run("qemu-img", "info", "--output=json", q.OutputPath);
        using var doc = JsonDocument.Parse(info);
        Assert.Equal("qcow2", doc.RootElement.GetProperty("format").GetString());
        var kept = Assert.Single(_image.Store.ListDisks());
        Assert.Equal(kept.DiskBytes, doc.RootElement.GetProperty("virtual-size").GetInt64());
    }

    [Fact]
    public async Task A_vagrant_box_is_a_tar_of_metadata_Vagrantfile_and_a_qcow2_box_img()
    {
        await _image.AddBaseAsync();
        var manifest = await _image.TagAsync("tiny");
        // The box's own layers, as the step cache would hold them after a first box of this image (making them
        // needs apt in the image, see ServerDiskTests and VagrantBoxTests).
        var image = _image.SnapshotsTopFirst;
        await _image.AddLayerAsync(root =>
        {
            DiskTestImage.Mk(root, "etc/sudoers.d");
            File.WriteAllText(Path.Combine(root, "etc/sudoers.d/vagrant"), VagrantAccess.SudoersEntry + "\n");
        });
        foreach (var step in VagrantAccess.Plan(manifest.Digest))
        {
            await _image.Store.StepCache.PutAsync(step.CacheKey, _image.State);
        }
        var box = await DiskExporter.ExportAsync(_image.Store, Request(manifest, ExportFormat.Vagrant, "tiny.box"), null, CancellationToken.None);

        var names = new List<string>();
        var extracted = Path.Combine(_image.OutDir, "box");
        Directory.CreateDirectory(extracted);
        await TarFile.ExtractToDirectoryAsync(box.OutputPath, extracted, overwriteFiles: false);
        using (var reader = new TarReader(File.OpenRead(box.OutputPath)))
        {
            while (reader.GetNextEntry() is { } e)
            {
                names.Add(e.Name);
            }
        }
        Assert.Equal(["metadata.json", "Vagrantfile", "box.img"], names);
        using var meta = JsonDocument.Parse(File.ReadAllText(Path.Combine(extracted, "metadata.json")));
        Assert.Equal("libvirt", meta.RootElement.GetProperty("provider").GetString());
        Assert.Equal("qcow2", meta.RootElement.GetProperty("format").GetString());
        Assert.True(meta.RootElement.GetProperty("virtual_size").GetInt32() >= 1);
        Assert.Contains("config.vm.provider :libvirt", File.ReadAllText(Path.Combine(extracted, "Vagrantfile")));
        var (code, check) = DiskTestImage.Run("qemu-img", "check", Path.Combine(extracted, "box.img"));
        Assert.True(code == 0, check);

        // The box's disk is the image with the box's layers; the image's own disk has none of them, and each is kept
        // under its own name.
        var raw = Path.Combine(_image.OutDir, "box.raw");
        Assert.Equal(0, DiskTestImage.Run("qemu-img", "convert", "-f", "qcow2", "-O", "raw", Path.Combine(extracted, "box.img"), raw).ExitCode);
        var onBox = DiskTree.OfDisk(raw, Partitions(raw)[1].Start);
        DiskTree.AssertSame(DiskTree.OfImage(_image.SnapshotsTopFirst), onBox);
        Assert.Contains(onBox, l => l.StartsWith("etc/sudoers.d/vagrant\t", StringComparison.Ordinal));
        var plain = await DiskExporter.ExportAsync(_image.Store, Request(manifest, ExportFormat.Raw, "tiny.raw"), null, CancellationToken.None);
        var onDisk = DiskTree.OfDisk(plain.OutputPath, Partitions(plain.OutputPath)[1].Start);
        DiskTree.AssertSame(DiskTree.OfImage(image), onDisk);
        Assert.DoesNotContain(onDisk, l => l.StartsWith("etc/sudoers.d", StringComparison.Ordinal));
        Assert.Equal(["tiny", "tiny+vagrant"], _image.Store.ListDisks().Select(d => d.Image).Order(StringComparer.Ordinal));
        Assert.Equal(manifest.Digest, _image.Store.Names.TryGetTag("tiny")!.Digest);
    }

    [Fact]
    public async Task A_vagrant_box_of_an_image_without_apt_is_bad_input_and_leaves_nothing()
    {
        await _image.AddBaseAsync();
        var manifest = await _image.TagAsync("tiny");
        var e = await Assert.ThrowsAsync<ExportException>(() =>
            DiskExporter.ExportAsync(_image.Store, Request(manifest, ExportFormat.Vagrant, "tiny.box"), null, CancellationToken.None));
        Assert.True(e.IsBadInput, e.Message);
        Assert.Contains("tiny", e.Message);
        Assert.Contains("/usr/bin/apt-get", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(_image.OutDir));
        Assert.Empty(_image.Store.ListDisks());
    }

    [Fact]
    public async Task A_vagrant_box_of_an_image_that_cannot_boot_is_refused_before_its_apt_step()
    {
        // This image has no apt either: the kernel is named, so the box's packages step never started.
        await _image.AddBaseAsync(kernel: false);
        var manifest = await _image.TagAsync("tiny");
        var e = await Assert.ThrowsAsync<ExportException>(() =>
            DiskExporter.ExportAsync(_image.Store, Request(manifest, ExportFormat.Vagrant, "tiny.box"), null, CancellationToken.None));
        Assert.True(e.IsBadInput, e.Message);
        Assert.Contains("linux-image-amd64", e.Message);
        Assert.DoesNotContain("apt-get", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(_image.OutDir));
    }

    [Theory]
    [InlineData(false, true, true, "linux-image-amd64")]
    [InlineData(true, false, true, "initramfs-tools")]
    [InlineData(true, true, false, "systemd-sysv")]
    public async Task An_image_that_cannot_boot_is_bad_input_naming_the_package_and_leaves_nothing(bool kernel, bool initrd, bool init, string package)
    {
        await _image.AddBaseAsync(kernel, initrd, init);
        var manifest = await _image.TagAsync("tiny");
        var e = await Assert.ThrowsAsync<ExportException>(() =>
            DiskExporter.ExportAsync(_image.Store, Request(manifest, ExportFormat.Raw, "tiny.raw"), null, CancellationToken.None));
        Assert.True(e.IsBadInput);
        Assert.Contains(package, e.Message);
        Assert.Contains("tiny", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(_image.OutDir));
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(_image.Test.Root, "kiln", "tmp")));
    }

    [Fact]
    public async Task A_disk_size_too_small_for_the_files_is_bad_input()
    {
        await _image.AddBaseAsync();
        var manifest = await _image.TagAsync("tiny");
        var e = await Assert.ThrowsAsync<ExportException>(() =>
            DiskExporter.ExportAsync(_image.Store, Request(manifest, ExportFormat.Raw, "tiny.raw", size: 40L << 20), null, CancellationToken.None));
        Assert.True(e.IsBadInput);
        Assert.Contains("too small", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(_image.OutDir));
    }

    [Fact]
    public async Task A_given_disk_size_is_the_size_of_the_disk()
    {
        await _image.AddBaseAsync();
        var manifest = await _image.TagAsync("tiny");
        var r = await DiskExporter.ExportAsync(_image.Store, Request(manifest, ExportFormat.Raw, "tiny.raw", size: 700L << 20), null, CancellationToken.None);
        Assert.Equal(700L << 20, new FileInfo(r.OutputPath).Length);
        AssertFsckClean(r.OutputPath, Partitions(r.OutputPath)[1].Start);
    }

    private sealed class CancelOn(string text, CancellationTokenSource cts) : IProgress<ExportEvent>
    {
        public void Report(ExportEvent value)
        {
            if (value.Message.Contains(text, StringComparison.Ordinal))
            {
                cts.Cancel();
            }
        }
    }

    [Theory]
    [InlineData("building")]
    [InlineData("writing")]
    public async Task A_cancelled_export_leaves_nothing_at_the_output_path_or_in_the_store_temp(string when)
    {
        await _image.AddBaseAsync();
        var manifest = await _image.TagAsync("tiny");
        using var cts = new CancellationTokenSource();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            DiskExporter.ExportAsync(_image.Store, Request(manifest, ExportFormat.Qcow2, "tiny.qcow2"), new CancelOn(when, cts), cts.Token));
        Assert.Empty(Directory.GetFileSystemEntries(_image.OutDir));
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(_image.Test.Root, "kiln", "tmp")));
        var (_, mounts) = DiskTestImage.Run("sh", "-c", "cat /proc/*/mountinfo 2>/dev/null | grep -c " + _image.Test.Root + " || true");
        Assert.Equal("0", mounts.Trim());
    }

    [Fact]
    public void Kernel_versions_compare_by_number()
    {
        Assert.True(BootFiles.CompareVersions("6.1.0-27-cloud-amd64", "6.1.0-9-cloud-amd64") > 0);
        Assert.True(BootFiles.CompareVersions("6.10.1", "6.9.12") > 0);
        Assert.Equal(0, BootFiles.CompareVersions("6.1.0-9-amd64", "6.1.0-9-amd64"));
    }
}
