using Kiln.Build.Exporters;
using Kiln.Build.Exporters.Disk;
using Kiln.Oci;

namespace Kiln.Build.Tests.Exporters.Disk;

/// <summary>A qcow2 output still holding the kept disk gets only the blocks an app change's disk update wrote, in
/// place; the result must be exactly the updated kept disk. The block list comes from debugfs's undo file.</summary>
public sealed class Qcow2PatchTests : IDisposable
{
    private readonly DiskTestImage _image = new();

    public void Dispose() => _image.Dispose();

    private Task<ExportResult> ExportQcow2Async(Descriptor manifest, string? holds) =>
        DiskExporter.ExportAsync(_image.Store, new ExportRequest
        {
            ImageName = "web",
            Manifest = manifest,
            Format = ExportFormat.Qcow2,
            OutputPath = Path.Combine(_image.OutDir, "web.qcow2"),
            OutputHoldsDisk = holds,
        }, null, CancellationToken.None);

    private async Task<Descriptor> ChangeAppAsync(string text)
    {
        await _image.AddLayerAsync(root =>
        {
            DiskTestImage.Mk(root, "srv/app");
            File.WriteAllText(Path.Combine(root, "srv/app/index.html"), text);
        });
        return await _image.TagAsync("web");
    }

    private string KeptRaw() => _image.Store.DiskRawPath(_image.Store.TryGetDisk("web")!)!;

    [Fact]
    public async Task An_app_change_patches_the_qcow2_written_from_the_kept_disk_and_it_equals_that_disk()
    {
        await _image.AddBaseAsync();
        var v1 = await ExportQcow2Async(await _image.TagAsync("web"), holds: null);
        Assert.False(v1.Patched);
        Assert.NotNull(v1.DiskContentId);

        var v2 = await ExportQcow2Async(await ChangeAppAsync("<h1>v2</h1>\n"), holds: v1.DiskContentId);

        Assert.True(v2.Incremental, v2.Detail);
        Assert.True(v2.Patched, v2.Detail);
        Assert.InRange(v2.BytesWritten, 1, 2L << 20);
        Assert.NotEqual(v1.DiskContentId, v2.DiskContentId);
        var (code, output) = DiskTestImage.Run("qemu-img", "compare", "-f", "qcow2", "-F", "raw", v2.OutputPath, KeptRaw());
        Assert.True(code == 0, output);
        Assert.Equal(0, DiskTestImage.Run("qemu-img", "check", v2.OutputPath).ExitCode);
    }

    [Fact]
    public async Task A_qcow2_whose_stamp_names_another_disk_is_written_whole()
    {
        await _image.AddBaseAsync();
        var v1 = await ExportQcow2Async(await _image.TagAsync("web"), holds: null);

        var v2 = await ExportQcow2Async(await ChangeAppAsync("<h1>v2</h1>\n"), holds: "not-" + v1.DiskContentId);

        Assert.True(v2.Incremental, v2.Detail);
        Assert.False(v2.Patched, v2.Detail);
        var (code, output) = DiskTestImage.Run("qemu-img", "compare", "-f", "qcow2", "-F", "raw", v2.OutputPath, KeptRaw());
        Assert.True(code == 0, output);
    }

    [Fact]
    public void The_undo_file_of_debugfs_names_every_block_it_changed()
    {
        using var dir = new ScratchDir();
        var fs = Path.Combine(dir.Path, "fs.img");
        var before = Path.Combine(dir.Path, "before.img");
        const long offset = 1 << 20; // a filesystem that starts inside the file, as a disk's root partition does
        File.WriteAllBytes(fs, new byte[offset]);
        Assert.Equal(0, DiskTestImage.Run("sh", "-c", $"truncate -s 33M {fs} && mkfs.ext4 -q -F -E offset={offset} {fs} 32M").ExitCode);
        File.Copy(fs, before);
        var data = Path.Combine(dir.Path, "data");
        File.WriteAllBytes(data, DiskTestImage.Bytes(300_000, 7));
        var script = Path.Combine(dir.Path, "script");
        File.WriteAllText(script, $"mkdir srv\nwrite {data} srv/blob\nmkdir srv/a\nwrite {data} srv/a/copy\n");
        var undo = Path.Combine(dir.Path, "undo");
        Assert.Equal(0, DiskTestImage.Run("debugfs", "-w", "-z", undo, "-f", script, $"{fs}?offset={offset}").ExitCode);

        var ranges = DebugfsUndo.WrittenRanges(undo, offset);

        var a = File.ReadAllBytes(before);
        var b = File.ReadAllBytes(fs);
        long changed = 0;
        int next = 0; // ranges are sorted: walk them along the file
        for (int i = 0; i < a.Length; i++)
        {
            if (a[i] != b[i])
            {
                changed++;
                while (next < ranges.Count && ranges[next].End <= i)
                {
                    next++;
                }
                if (next == ranges.Count || i < ranges[next].Offset)
                {
                    Assert.Fail($"byte {i} changed and no range holds it");
                }
            }
        }
        // Two copies of 300,000 random bytes (a few of them equal to what was there), directories, bitmaps, inodes.
        Assert.True(changed > 550_000, $"only {changed} bytes changed");
        Assert.InRange(ranges.Sum(r => r.Length), changed, 4L << 20);
    }

    [Fact]
    public void A_file_that_is_not_an_undo_file_is_refused()
    {
        using var dir = new ScratchDir();
        var file = Path.Combine(dir.Path, "undo");
        File.WriteAllBytes(file, new byte[4096]);
        Assert.Contains("E2UNDO02", Assert.ThrowsAny<Exception>(() => DebugfsUndo.WrittenRanges(file, 0)).Message, StringComparison.Ordinal);
    }

    private sealed class ScratchDir : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("kiln-undo-").FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
