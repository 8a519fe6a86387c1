using System.Globalization;
using System.Text.Json;
using Kiln.Build.Exporters;
using Kiln.Build.Exporters.Disk;
using Kiln.Build.Store;

namespace Kiln.Cli.Tests;

/// <summary>Disks of tiny images built by the kiln command (busybox as /sbin/init and a stand-in kernel and initrd:
/// nothing here boots, the VM check does that): the ext4 root holds the image's tree, and an app change gives an
/// incremental disk equal to a full export.</summary>
public sealed class DiskExportTests : IDisposable
{
    private readonly TempDir _store = new("kiln-store");
    private readonly TempDir _out = new("kiln-disk-out");

    public void Dispose()
    {
        _store.Dispose();
        _out.Dispose();
    }

    private static TinyContext Context(bool kernel)
    {
        var ctx = new TinyContext("images:\n  web:\n    from: scratch\n    steps:\n" + TinyContext.RootStep +
            "      - copy: app/\n        to: /srv/app/\n");
        Directory.CreateDirectory(Path.Combine(ctx.Path, "rootfs", "sbin"));
        File.CreateSymbolicLink(Path.Combine(ctx.Path, "rootfs", "sbin", "init"), "../bin/busybox");
        if (kernel)
        {
            ctx.Write("rootfs/boot/vmlinuz-6.1.0-9-amd64", new string('k', 200_000));
            ctx.Write("rootfs/boot/initrd.img-6.1.0-9-amd64", new string('i', 100_000));
        }
        ctx.Write("app/index.html", "<h1>v1</h1>\n");
        ctx.Write("app/css/site.css", "body{}\n");
        return ctx;
    }

    private async Task<ExportResult> ExportAsync(string file, bool incremental = true)
    {
        using var store = KilnStore.Open(_store.Path);
        var manifest = store.Names.TryGetTag("web") ?? throw new InvalidOperationException("web is not tagged");
        return await DiskExporter.ExportAsync(store, new ExportRequest
        {
            ImageName = "web",
            Manifest = manifest,
            Format = ExportFormat.Raw,
            OutputPath = _out.Sub(file),
            AllowIncremental = incremental,
        }, null, CancellationToken.None);
    }

    private void Build(TinyContext ctx)
    {
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
    }

    /// <summary>The ext4 root of a raw disk (partition 2), loop-mounted read-only in a private mount namespace, listed
    /// the way <see cref="TreeListing"/> lists (lost+found, which every ext4 root has, left out).</summary>
    private static IReadOnlyList<string> DiskTree(string raw)
    {
        var sf = KilnProcess.Tool("sfdisk", "--json", raw);
        Assert.True(sf.ExitCode == 0, sf.All);
        using var doc = JsonDocument.Parse(sf.Stdout);
        long offset = doc.RootElement.GetProperty("partitiontable").GetProperty("partitions")[1].GetProperty("start").GetInt64() * 512;
        var fsck = KilnProcess.Tool("e2fsck", "-fn", $"{raw}?offset={offset}");
        Assert.True(fsck.ExitCode == 0, fsck.All);
        using var mnt = new TempDir("kiln-disk-mnt");
        var script = """
mount -t ext4 -o "ro,loop,offset=$2" "$3" "$1" || exit 1
cd "$1" || exit 1
find . -mindepth 1 -path ./lost+found -prune -o -printf '%P\t%y\t%m\t%U\t%G\t%l\n'
echo '--- hashes'
find . -mindepth 1 -path ./lost+found -prune -o -type f -print0 | xargs -0 -r sha256sum
""";
        var r = KilnProcess.Tool("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "list", mnt.Path,
            offset.ToString(CultureInfo.InvariantCulture), raw);
        Assert.True(r.ExitCode == 0, r.All);
        var parts = r.Stdout.Split("--- hashes\n");
        var hashes = parts[1].Split('\n', StringSplitOptions.RemoveEmptyEntries).ToDictionary(l => l[(64 + 2 + 2)..], l => l[..64], StringComparer.Ordinal);
        var list = parts[0].Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l + "\t" + hashes.GetValueOrDefault(l[..l.IndexOf('\t')], "")).ToList();
        list.Sort(StringComparer.Ordinal);
        return list;
    }

    [Fact]
    public async Task An_app_change_gives_an_incremental_disk_with_the_same_tree_as_a_full_export()
    {
        using var ctx = Context(kernel: true);
        Build(ctx);
        var first = await ExportAsync("v1.raw");
        Assert.False(first.Incremental);
        TreeListing.AssertSame(TreeListing.OfImage(_store.Path, "web"), DiskTree(first.OutputPath));

        ctx.Write("app/index.html", "<h1>v2</h1>\n");
        Build(ctx);
        var second = await ExportAsync("v2.raw");
        Assert.True(second.Incremental, second.Detail);
        var incremental = DiskTree(second.OutputPath);
        Assert.Contains(incremental, l => l.StartsWith("srv/app/index.html\t", StringComparison.Ordinal));
        TreeListing.AssertSame(TreeListing.OfImage(_store.Path, "web"), incremental);
        var full = await ExportAsync("v2-full.raw", incremental: false);
        Assert.False(full.Incremental);
        TreeListing.AssertSame(DiskTree(full.OutputPath), incremental);
        Leftovers.AssertNone(_store.Path);
    }

    [Fact]
    public async Task An_image_without_a_kernel_is_bad_input_naming_the_package_and_leaves_no_file()
    {
        using var ctx = Context(kernel: false);
        Build(ctx);
        var e = await Assert.ThrowsAsync<ExportException>(() => ExportAsync("web.raw"));
        Assert.True(e.IsBadInput);
        Assert.Contains("linux-image-amd64", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(_out.Path));
        Leftovers.AssertNone(_store.Path);
    }
}
