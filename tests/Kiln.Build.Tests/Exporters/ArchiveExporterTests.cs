using System.Formats.Tar;
using System.Text.Json;
using Kiln.Build.Exporters;
using Kiln.Build.Store;
using Kiln.Build.Tests.Store;
using Kiln.Oci;

namespace Kiln.Build.Tests.Exporters;

public sealed class ArchiveExporterTests : IDisposable
{
    private readonly TestStore _t = new();
    private readonly string _out = Directory.CreateTempSubdirectory("kiln-export-test-").FullName;

    public void Dispose()
    {
        _t.Dispose();
        Directory.Delete(_out, recursive: true);
    }

    /// <summary>Three layers that use every kind of entry and both kinds of whiteout, gzip and zstd.</summary>
    private async Task<Descriptor> LayeredAsync()
    {
        var l1 = await _t.AddLayerAsync(TestStore.Empty, w =>
        {
            w.Dir("etc/");
            w.File("etc/a", "a", xattrs: new() { ["user.kiln"] = "yes" });
            w.File("etc/b", "b", uid: 1000, gid: 1001);
            w.Dir("opt/");
            w.File("opt/x", "x");
            w.Dir("opt/sub/");
            w.File("opt/sub/deep", "deep");
            w.File("data", "shared", LayeredImage.Mode755);
            w.Link(TarEntryType.HardLink, "data-link", "data");
            w.Link(TarEntryType.SymbolicLink, "etc/link", "a");
            w.Dir("dev/");
            w.CharDevice("dev/null", 1, 3);
            w.Dir("gone/");
            w.File("gone/file", "gone");
            w.File("will-be-dir", "file");
        });
        var l2 = await _t.AddLayerAsync(l1, w =>
        {
            w.Dir("etc/");
            w.File("etc/.wh.a", "");
            w.File("etc/c", "c");
            w.Dir("opt/");
            w.File("opt/.wh..wh..opq", "");
            w.File("opt/y", "y");
            w.File(".wh.gone", "");
            w.Link(TarEntryType.HardLink, "data-too", "data"); // a link to a file of a lower layer
            w.Dir("will-be-dir/", LayeredImage.Mode755, uid: 7);
            w.File("will-be-dir/inside", "inside");
        }, zstd: true);
        var l3 = await _t.AddLayerAsync(l2, w =>
        {
            w.File("etc/b", "b2", uid: 1000, gid: 1001);
            w.File("etc/a", "a-again"); // after the whiteout below it: back again
            w.File("etc-x", "after the contents of etc/");
        });
        var desc = await _t.Store.Content.WriteImageAsync(l3);
        await _t.Store.Names.TagAsync("web", desc);
        return desc;
    }

    private Task<ExportResult> ExportAsync(Descriptor manifest, ExportFormat format, string file, IProgress<ExportEvent>? progress = null,
        CancellationToken ct = default, DateTimeOffset? epoch = null) =>
        ArchiveExporter.ExportAsync(_t.Store, new ExportRequest
        {
            ImageName = "web",
            Manifest = manifest,
            Format = format,
            OutputPath = Path.Combine(_out, file),
            Epoch = epoch ?? DateTimeOffset.UnixEpoch,
        }, progress, ct);

    [Fact]
    public async Task Rootfs_is_the_merged_tree_with_whiteouts_applied_and_owners_modes_links_devices_and_xattrs_kept()
    {
        var desc = await LayeredAsync();
        var result = await ExportAsync(desc, ExportFormat.Rootfs, "web.rootfs.tar");
        Assert.Equal(new FileInfo(result.OutputPath).Length, result.Bytes);
        Assert.Equal(
        [
            "data RegularFile 755 0:0 = shared",
            "data-link HardLink 755 0:0 -> data",
            "data-too HardLink 755 0:0 -> data",
            "dev/ Directory 755 0:0",
            "dev/null CharacterDevice 666 0:0 1,3",
            "etc/ Directory 755 0:0",
            "etc/a RegularFile 644 0:0 = a-again",
            "etc/b RegularFile 644 1000:1001 = b2",
            "etc/c RegularFile 644 0:0 = c",
            "etc/link SymbolicLink 755 0:0 -> a",
            "etc-x RegularFile 644 0:0 = after the contents of etc/",
            "opt/ Directory 755 0:0",
            "opt/y RegularFile 644 0:0 = y",
            "will-be-dir/ Directory 755 7:0",
            "will-be-dir/inside RegularFile 644 0:0 = inside",
        ], LayeredImage.Describe(result.OutputPath));
    }

    [Fact]
    public async Task Rootfs_hard_links_keep_the_content_they_had_and_a_file_over_a_directory_hides_its_contents()
    {
        var l1 = await _t.AddLayerAsync(TestStore.Empty, w =>
        {
            w.File("z-file", "first");
            w.Link(TarEntryType.HardLink, "a-link", "z-file"); // sorts before its target
            w.Dir("tree/");
            w.File("tree/leaf", "leaf");
        });
        var l2 = await _t.AddLayerAsync(l1, w =>
        {
            w.File("z-file", "second"); // a new file: the link still holds the old one, as on overlayfs
            w.File("tree", "now a file");
        });
        var desc = await _t.Store.Content.WriteImageAsync(l2);
        var result = await ExportAsync(desc, ExportFormat.Rootfs, "links.tar");
        Assert.Equal(
        [
            "a-link RegularFile 644 0:0 = first", // a link shares its file's inode, so its mode
            "tree RegularFile 644 0:0 = now a file",
            "z-file RegularFile 644 0:0 = second",
        ], LayeredImage.Describe(result.OutputPath));

        var l3 = await _t.AddLayerAsync(l1, w => w.File(".wh.z-file", ""));
        var d3 = await _t.Store.Content.WriteImageAsync(l3);
        var r3 = await ExportAsync(d3, ExportFormat.Rootfs, "links3.tar");
        Assert.Equal(["a-link RegularFile 644 0:0 = first", "tree/ Directory 755 0:0", "tree/leaf RegularFile 644 0:0 = leaf"], LayeredImage.Describe(r3.OutputPath));
    }

    [Fact]
    public async Task Rootfs_keeps_xattrs_sorted_by_name()
    {
        var state = await _t.AddLayerAsync(TestStore.Empty, w => w.File("x", "x", xattrs: new() { ["user.kiln"] = "yes", ["security.capability"] = "cap" }));
        var desc = await _t.Store.Content.WriteImageAsync(state);
        var result = await ExportAsync(desc, ExportFormat.Rootfs, "x.tar");
        Assert.Equal(["x RegularFile 644 0:0 [security.capability=cap] [user.kiln=yes] = x"], LayeredImage.Describe(result.OutputPath));
    }

    [Theory]
    [InlineData(ExportFormat.OciArchive)]
    [InlineData(ExportFormat.DockerArchive)]
    [InlineData(ExportFormat.Rootfs)]
    public async Task Two_exports_are_byte_identical(ExportFormat format)
    {
        var desc = await LayeredAsync();
        var a = await ExportAsync(desc, format, "a.tar");
        var b = await ExportAsync(desc, format, "b.tar");
        Assert.Equal(File.ReadAllBytes(a.OutputPath), File.ReadAllBytes(b.OutputPath));
    }

    [Theory]
    [InlineData(ExportFormat.OciArchive)]
    [InlineData(ExportFormat.DockerArchive)]
    [InlineData(ExportFormat.Rootfs)]
    public async Task An_export_cancelled_midway_leaves_nothing_at_the_output_path(ExportFormat format)
    {
        var desc = await LayeredAsync();
        using var cts = new CancellationTokenSource();
        var events = new List<string>();
        // Cancels on the second progress event: a blob or layer is already written or read by then.
        var progress = new SyncProgress(e =>
        {
            events.Add(e.Message);
            if (events.Count == 2)
            {
                cts.Cancel();
            }
        });
        File.WriteAllText(Path.Combine(_out, "keep.txt"), "unrelated");
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => ExportAsync(desc, format, "web.tar", progress, cts.Token));
        Assert.True(events.Count >= 2, string.Join("; ", events));
        Assert.Equal(["keep.txt"], Directory.GetFileSystemEntries(_out).Select(Path.GetFileName));
        Assert.Empty(Directory.GetFileSystemEntries(_t.TmpDir));
    }

    [Theory]
    [InlineData(ExportFormat.OciArchive)]
    [InlineData(ExportFormat.DockerArchive)]
    [InlineData(ExportFormat.Rootfs)]
    public async Task A_corrupt_layer_fails_the_export_and_leaves_the_previous_file_untouched(ExportFormat format)
    {
        var desc = await LayeredAsync();
        var target = Path.Combine(_out, "web.tar");
        File.WriteAllText(target, "previous export");
        var (manifest, _) = await _t.Store.Content.ReadImageAsync(desc.Digest);
        var blob = _t.Store.Content.BlobPath(manifest.Layers[1].Digest);
        var bytes = File.ReadAllBytes(blob);
        bytes[bytes.Length / 2] ^= 0x55;
        File.SetUnixFileMode(blob, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.WriteAllBytes(blob, bytes);

        var ex = await Assert.ThrowsAsync<ExportException>(() => ExportAsync(desc, format, "web.tar"));
        Assert.False(ex.IsBadInput);
        Assert.Contains("web", ex.Message);
        Assert.Equal("previous export", File.ReadAllText(target));
        Assert.Equal(["web.tar"], Directory.GetFileSystemEntries(_out).Select(Path.GetFileName));
    }

    [Fact]
    public async Task An_output_folder_that_does_not_exist_is_bad_input()
    {
        var desc = await LayeredAsync();
        var ex = await Assert.ThrowsAsync<ExportException>(() => ExportAsync(desc, ExportFormat.OciArchive, "missing/web.tar"));
        Assert.True(ex.IsBadInput);
    }

    [Fact]
    public async Task Oci_archive_export_holds_the_stored_manifest_and_blobs_tagged_with_the_image_name()
    {
        var desc = await LayeredAsync();
        var result = await ExportAsync(desc, ExportFormat.OciArchive, "web.oci.tar");
        using var reader = Kiln.Oci.Archives.OciArchiveReader.Open(result.OutputPath);
        var found = reader.FindManifest("web");
        Assert.Equal(desc.Digest, found.Digest);
        var (manifest, _) = await _t.Store.Content.ReadImageAsync(desc.Digest);
        foreach (var layer in manifest.Layers)
        {
            using var s = reader.OpenBlob(layer);
            Assert.Equal(layer.Digest, Digest.Compute(s));
        }
    }

    [Theory]
    [InlineData(ExportFormat.OciArchive, "oci-archive")]
    [InlineData(ExportFormat.DockerArchive, "docker-archive")]
    public async Task Skopeo_inspect_accepts_the_archive_and_reports_the_image(ExportFormat format, string transport)
    {
        var desc = await LayeredAsync();
        var result = await ExportAsync(desc, format, "web.tar");
        var (rc, output) = TestStore.Run("/usr/bin/skopeo", "inspect", $"{transport}:{result.OutputPath}");
        Assert.True(rc == 0, output);
        using var doc = JsonDocument.Parse(output);
        var (manifest, config) = await _t.Store.Content.ReadImageAsync(desc.Digest);
        var layers = doc.RootElement.GetProperty("Layers").EnumerateArray().Select(l => l.GetString()).ToList();
        if (format == ExportFormat.OciArchive)
        {
            Assert.Equal(desc.Digest.Value, doc.RootElement.GetProperty("Digest").GetString());
            Assert.Equal(manifest.Layers.Select(l => l.Digest.Value), layers);
        }
        else
        {
            // docker-archive images are addressed by their uncompressed layers.
            Assert.Equal(config.RootFs.DiffIds.Select(d => d.Value), layers);
        }
        var (rc2, raw) = TestStore.Run("/usr/bin/skopeo", "inspect", "--config", "--raw", $"{transport}:{result.OutputPath}");
        Assert.True(rc2 == 0, raw);
        Assert.Equal(OciJson.Serialize(config), System.Text.Encoding.UTF8.GetBytes(raw.TrimEnd('\n')));
    }

    [Fact]
    public async Task Skopeo_copies_the_docker_archive_to_a_layout_whose_layers_unpack_to_the_diff_ids()
    {
        var desc = await LayeredAsync();
        var result = await ExportAsync(desc, ExportFormat.DockerArchive, "web.docker.tar");
        var layout = Path.Combine(_out, "layout");
        var (rc, output) = TestStore.Run("/usr/bin/skopeo", "copy", $"docker-archive:{result.OutputPath}", $"oci:{layout}:web");
        Assert.True(rc == 0, output);
        var (rc2, raw) = TestStore.Run("/usr/bin/skopeo", "inspect", "--config", "--raw", $"oci:{layout}:web");
        Assert.True(rc2 == 0, raw);
        var (_, config) = await _t.Store.Content.ReadImageAsync(desc.Digest);
        Assert.Equal(config.RootFs.DiffIds, OciJson.DeserializeConfig(System.Text.Encoding.UTF8.GetBytes(raw)).RootFs.DiffIds);
    }

    private sealed class SyncProgress(Action<ExportEvent> report) : IProgress<ExportEvent>
    {
        public void Report(ExportEvent value) => report(value);
    }
}
