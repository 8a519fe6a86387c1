using Kiln.Build.Exporters;
using Kiln.Build.Exporters.Disk;
using Kiln.Build.Native;
using Kiln.Oci;

namespace Kiln.Build.Tests.Exporters.Disk;

/// <summary>Disks made from a kept disk by applying only changed top layers: they must pass fsck and hold exactly the
/// files a full export holds; whatever cannot be applied safely falls back to a full build.</summary>
[Trait("Tier", "Slow")] // mkfs.ext4, e2fsck, debugfs and qemu-img on real disk files: the costliest of ./test --fast
public sealed class IncrementalDiskTests : IDisposable
{
    private readonly DiskTestImage _image = new();

    public void Dispose() => _image.Dispose();

    private async Task<ExportResult> ExportAsync(string name, Descriptor manifest, string file, bool incremental = true) =>
        await DiskExporter.ExportAsync(_image.Store, new ExportRequest
        {
            ImageName = name,
            Manifest = manifest,
            Format = ExportFormat.Raw,
            OutputPath = Path.Combine(_image.OutDir, file),
            AllowIncremental = incremental,
        }, null, CancellationToken.None);

    private static long RootOffset(string raw) => DiskExporterTests.Partitions(raw)[1].Start;

    /// <summary>Checks the incremental disk: fsck clean, the image's tree, and the same tree as a full export.</summary>
    private async Task AssertLikeFullExportAsync(string name, Descriptor manifest, ExportResult incremental)
    {
        var raw = incremental.OutputPath;
        DiskExporterTests.AssertFsckClean(raw, RootOffset(raw));
        var onDisk = DiskTree.OfDisk(raw, RootOffset(raw));
        DiskTree.AssertSame(DiskTree.OfImage(_image.SnapshotsTopFirst), onDisk);
        var full = await ExportAsync(name, manifest, name + "-full.raw", incremental: false);
        Assert.False(full.Incremental);
        DiskTree.AssertSame(DiskTree.OfDisk(full.OutputPath, RootOffset(full.OutputPath)), onDisk);
    }

    [Fact]
    public async Task A_one_file_change_on_top_is_applied_to_the_kept_disk_and_gives_the_full_exports_tree()
    {
        await _image.AddBaseAsync();
        var v1 = await _image.TagAsync("web");
        Assert.False((await ExportAsync("web", v1, "v1.raw")).Incremental);

        await _image.AddLayerAsync(root =>
        {
            DiskTestImage.Mk(root, "srv/app");
            File.WriteAllText(Path.Combine(root, "srv/app/index.html"), "<h1>v2</h1>\n");
        });
        var v2 = await _image.TagAsync("web");
        var r = await ExportAsync("web", v2, "v2.raw");

        Assert.True(r.Incremental, r.Detail);
        await AssertLikeFullExportAsync("web", v2, r);
    }

    [Fact]
    public async Task A_changed_app_layer_under_an_unchanged_layer_is_applied_and_the_upper_layer_still_wins()
    {
        // Like examples/web's server: the app changes in a lower image, the layer above it comes out the same.
        await _image.AddBaseAsync();
        var baseState = _image.State;
        static void Upper(string root)
        {
            DiskTestImage.Mk(root, "srv/app");
            DiskTestImage.Mk(root, "lib/modules");
            File.WriteAllText(Path.Combine(root, "lib/modules/driver.ko"), "module\n");
            File.WriteAllText(Path.Combine(root, "srv/app/motd"), "from the upper layer\n");
        }
        await _image.AddLayerAsync(root =>
        {
            DiskTestImage.Mk(root, "srv/app");
            File.WriteAllText(Path.Combine(root, "srv/app/index.html"), "<h1>v1</h1>\n");
            File.WriteAllText(Path.Combine(root, "srv/app/motd"), "from the app v1\n");
        });
        await _image.AddLayerAsync(Upper);
        var v1 = await _image.TagAsync("server");
        var upper = _image.State.Config.RootFs.DiffIds[^1];
        Assert.False((await ExportAsync("server", v1, "v1.raw")).Incremental);

        _image.State = baseState;
        await _image.AddLayerAsync(root =>
        {
            DiskTestImage.Mk(root, "srv/app");
            File.WriteAllText(Path.Combine(root, "srv/app/index.html"), "<h1>v2, changed</h1>\n");
            File.WriteAllText(Path.Combine(root, "srv/app/motd"), "from the app v2\n");
        });
        await _image.AddLayerAsync(Upper);
        Assert.Equal(upper, _image.State.Config.RootFs.DiffIds[^1]);
        var v2 = await _image.TagAsync("server");
        var r = await ExportAsync("server", v2, "v2.raw");

        Assert.True(r.Incremental, r.Detail);
        await AssertLikeFullExportAsync("server", v2, r);
    }

    [Fact]
    public void Only_layers_that_differ_at_the_same_depth_are_walked()
    {
        static Digest D(char c) => Digest.Parse("sha256:" + new string(c, 64));
        Assert.Equal([D('b'), D('c')], IncrementalDisk.Differing([D('a'), D('b'), D('f')], [D('a'), D('c'), D('f')], 1));
        Assert.Equal([D('f'), D('d'), D('e')], IncrementalDisk.Differing([D('a'), D('f')], [D('a'), D('d'), D('e')], 1));
        Assert.Empty(IncrementalDisk.Differing([D('a'), D('f')], [D('a'), D('f')], 2));
    }

    [Fact]
    public async Task An_app_layer_replaced_on_the_same_base_applies_adds_removes_opaque_dirs_modes_links_and_xattrs()
    {
        await _image.AddBaseAsync();
        var baseState = _image.State;
        await _image.AddLayerAsync(root =>
        {
            DiskTestImage.Mk(root, "srv/app/only-v1");
            File.WriteAllText(Path.Combine(root, "srv/app/index.html"), "<h1>v1</h1>\n");
            File.WriteAllText(Path.Combine(root, "srv/app/only-v1/x.txt"), "x\n");
            File.CreateSymbolicLink(Path.Combine(root, "srv/app/current"), "only-v1");
        });
        var v1 = await _image.TagAsync("web");
        Assert.False((await ExportAsync("web", v1, "v1.raw")).Incremental);

        // v2 replaces v1's layer: same base, a different top layer.
        _image.State = baseState;
        await _image.AddLayerAsync(root =>
        {
            DiskTestImage.Mk(root, "srv/app/assets");
            DiskTestImage.Mk(root, "etc");
            File.WriteAllText(Path.Combine(root, "srv/app/index.html"), "<h1>version two, longer</h1>\n");
            File.WriteAllBytes(Path.Combine(root, "srv/app/big.bin"), DiskTestImage.Bytes(1_500_000, 9));
            File.CreateSymbolicLink(Path.Combine(root, "srv/app/current"), "assets");
            LibC.MknodWhiteout(Path.Combine(root, "srv/app/old.js"));
            LibC.SetXattr(Path.Combine(root, "srv/app/assets"), "trusted.overlay.opaque", "y"u8);
            File.WriteAllText(Path.Combine(root, "srv/app/assets/b.css"), "b{}\n");
            File.WriteAllText(Path.Combine(root, "etc/motd"), "old motd\n");
            LibC.Chmod(Path.Combine(root, "etc/motd"), Convert.ToUInt32("640", 8));
            LibC.Lchown(Path.Combine(root, "etc/motd"), 0, 33);
            File.WriteAllText(Path.Combine(root, "etc/tagged"), "t\n");
            LibC.SetXattr(Path.Combine(root, "etc/tagged"), "user.kiln-test", "v2"u8);
            DiskTestImage.Mk(root, "var/lib/app/data");
            LibC.Lchown(Path.Combine(root, "var/lib/app/data"), 33, 33);
        });
        var v2 = await _image.TagAsync("web");
        var r = await ExportAsync("web", v2, "v2.raw");

        Assert.True(r.Incremental, r.Detail);
        await AssertLikeFullExportAsync("web", v2, r);
        var (_, xattr) = DiskTestImage.Run("debugfs", "-R", "ea_get /etc/tagged user.kiln-test", $"{r.OutputPath}?offset={RootOffset(r.OutputPath)}");
        Assert.Contains("v2", xattr);
    }

    [Fact]
    public async Task A_disk_of_another_image_below_is_copied_not_changed()
    {
        await _image.AddBaseAsync();
        var baseManifest = await _image.TagAsync("server");
        var baseSnapshots = _image.SnapshotsTopFirst;
        await ExportAsync("server", baseManifest, "server.raw");
        await _image.AddLayerAsync(root =>
        {
            DiskTestImage.Mk(root, "srv/app");
            File.WriteAllText(Path.Combine(root, "srv/app/index.html"), "<h1>app</h1>\n");
        });
        var app = await _image.TagAsync("app");
        var r = await ExportAsync("app", app, "app.raw");

        Assert.True(r.Incremental, r.Detail);
        Assert.Contains("kept disk of server", r.Detail);
        await AssertLikeFullExportAsync("app", app, r);
        // server's kept disk still holds server's tree.
        var kept = _image.Store.TryGetDisk("server")!;
        var keptRaw = _image.Store.DiskRawPath(kept)!;
        DiskExporterTests.AssertFsckClean(keptRaw, kept.RootOffset);
        DiskTree.AssertSame(DiskTree.OfImage(baseSnapshots), DiskTree.OfDisk(keptRaw, kept.RootOffset));
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
    [InlineData("applying")]
    [InlineData("writing")]
    public async Task A_cancelled_incremental_export_leaves_no_file_and_a_kept_disk_that_still_gives_the_right_tree(string when)
    {
        await _image.AddBaseAsync();
        var v1 = await _image.TagAsync("web");
        await ExportAsync("web", v1, "v1.raw");
        await _image.AddLayerAsync(root =>
        {
            DiskTestImage.Mk(root, "srv/app");
            File.WriteAllText(Path.Combine(root, "srv/app/index.html"), "<h1>v2</h1>\n");
        });
        var v2 = await _image.TagAsync("web");
        using var cts = new CancellationTokenSource();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => DiskExporter.ExportAsync(_image.Store, new ExportRequest
        {
            ImageName = "web",
            Manifest = v2,
            Format = ExportFormat.Qcow2,
            OutputPath = Path.Combine(_image.OutDir, "v2.qcow2"),
        }, new CancelOn(when, cts), cts.Token));
        Assert.False(File.Exists(Path.Combine(_image.OutDir, "v2.qcow2")));
        Assert.Empty(Directory.GetFiles(_image.OutDir, ".*"));
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(_image.Test.Root, "kiln", "tmp")));

        var r = await ExportAsync("web", v2, "v2.raw");
        Assert.True(r.Incremental, r.Detail);
        await AssertLikeFullExportAsync("web", v2, r);
    }

    [Fact]
    public async Task A_changed_kernel_is_built_in_full_and_says_why()
    {
        await _image.AddBaseAsync();
        var v1 = await _image.TagAsync("web");
        await ExportAsync("web", v1, "v1.raw");
        await _image.AddLayerAsync(root =>
        {
            DiskTestImage.Mk(root, "boot");
            File.WriteAllBytes(Path.Combine(root, "boot/initrd.img-6.1.0-27-amd64"), DiskTestImage.Bytes(210_000, 7));
        });
        var v2 = await _image.TagAsync("web");
        var r = await ExportAsync("web", v2, "v2.raw");
        Assert.False(r.Incremental);
        Assert.Contains("kernel or initrd", r.Detail);
        DiskTree.AssertSame(DiskTree.OfImage(_image.SnapshotsTopFirst), DiskTree.OfDisk(r.OutputPath, RootOffset(r.OutputPath)));
    }

    [Fact]
    public async Task A_new_hard_link_falls_back_to_a_full_build_with_the_right_tree()
    {
        await _image.AddBaseAsync();
        var v1 = await _image.TagAsync("web");
        await ExportAsync("web", v1, "v1.raw");
        await _image.AddLayerAsync(root =>
        {
            DiskTestImage.Mk(root, "srv/app");
            File.WriteAllText(Path.Combine(root, "srv/app/a.txt"), "same inode\n");
            LibC.Link(Path.Combine(root, "srv/app/a.txt"), Path.Combine(root, "srv/app/b.txt"));
        });
        var v2 = await _image.TagAsync("web");
        var r = await ExportAsync("web", v2, "v2.raw");
        Assert.False(r.Incremental);
        Assert.Contains("hard link", r.Detail);
        DiskExporterTests.AssertFsckClean(r.OutputPath, RootOffset(r.OutputPath));
        DiskTree.AssertSame(DiskTree.OfImage(_image.SnapshotsTopFirst), DiskTree.OfDisk(r.OutputPath, RootOffset(r.OutputPath)));
    }

    [Fact]
    public async Task Gc_drops_the_kept_disk_of_an_image_no_longer_tagged()
    {
        await _image.AddBaseAsync();
        var v1 = await _image.TagAsync("web");
        await ExportAsync("web", v1, "v1.raw");
        Assert.Single(_image.Store.ListDisks());
        var disks = _image.Store.DisksDir;
        Assert.Single(Directory.GetFiles(disks, "*.raw"));
        Assert.Single(Directory.GetFiles(disks, "*.json"));

        await _image.Store.CollectGarbageAsync();
        Assert.Single(_image.Store.ListDisks());

        await _image.Store.Names.UntagAsync("web");
        var report = await _image.Store.CollectGarbageAsync();
        Assert.Equal(1, report.DisksRemoved);
        Assert.Empty(_image.Store.ListDisks());
        Assert.Empty(Directory.GetFiles(disks));
    }

    [Fact]
    public async Task Gc_keeps_the_disk_of_a_box_as_long_as_its_image_is_tagged()
    {
        await _image.AddBaseAsync();
        var v1 = await _image.TagAsync("web");
        var r = await ExportAsync("web", v1, "v1.raw");
        var copy = Path.Combine(_image.OutDir, "box.raw");
        File.Copy(r.OutputPath, copy);
        await _image.Store.PutDiskAsync(_image.Store.TryGetDisk("web")! with { Image = "web" + VagrantAccess.DiskSuffix }, copy);
        Assert.Equal(2, _image.Store.ListDisks().Count);

        await _image.Store.CollectGarbageAsync();
        Assert.Equal(["web", "web+vagrant"], _image.Store.ListDisks().Select(d => d.Image).Order(StringComparer.Ordinal));

        await _image.Store.Names.UntagAsync("web");
        var report = await _image.Store.CollectGarbageAsync();
        Assert.Equal(2, report.DisksRemoved);
        Assert.Empty(_image.Store.ListDisks());
    }
}
