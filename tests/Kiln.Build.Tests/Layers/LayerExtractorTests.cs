using System.Formats.Tar;
using System.IO.Compression;
using Kiln.Build.Layers;
using Kiln.Build.Native;
using Kiln.Oci;

namespace Kiln.Build.Tests.Layers;

public partial class LayerExtractorTests
{
    private static byte[] Tar(Action<TarWriter> write)
    {
        var ms = new MemoryStream();
        using (var w = new TarWriter(ms, TarEntryFormat.Pax, leaveOpen: true))
        {
            write(w);
        }
        return ms.ToArray();
    }

    private static byte[] Gzip(byte[] data)
    {
        var ms = new MemoryStream();
        using (var g = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true))
        {
            g.Write(data);
        }
        return ms.ToArray();
    }

    private static void File_(TarWriter w, string name, string content = "data")
    {
        var e = new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(content)) };
        w.WriteEntry(e);
    }

    private static void Link(TarWriter w, TarEntryType type, string name, string target) =>
        w.WriteEntry(new PaxTarEntry(type, name) { LinkName = target });

    private static void Dir(TarWriter w, string name) => w.WriteEntry(new PaxTarEntry(TarEntryType.Directory, name));

    /// <summary>Extracts a malicious layer into a fresh target next to a sentinel and checks it was refused cleanly.</summary>
    private static async Task AssertRefused(byte[] tar, string mentioned, bool gzip = false)
    {
        using var t = new TempRoot();
        string outside = t.Dir("outside");
        string sentinel = Path.Combine(outside, "sentinel");
        File.WriteAllText(sentinel, "untouched");
        string target = t.Sub("target");
        var ex = await Assert.ThrowsAsync<LayerException>(() => LayerExtractor.ExtractAsync(
            new MemoryStream(gzip ? Gzip(tar) : tar), gzip ? MediaTypes.LayerGzip : MediaTypes.LayerTar, target));
        Assert.Contains(mentioned, ex.Message);
        Assert.False(Directory.Exists(target), "the target it created is removed");
        Assert.Equal(["sentinel"], Directory.GetFileSystemEntries(outside).Select(Path.GetFileName));
        Assert.Equal("untouched", File.ReadAllText(sentinel));
    }

    [Theory]
    [InlineData("../x")]
    [InlineData("a/../../x")]
    [InlineData("/abs")]
    public async Task Rejects_entry_that_escapes_root(string name)
    {
        await AssertRefused(Tar(w => { File_(w, "ok"); File_(w, name); }), name);
    }

    [Fact]
    public async Task Rejects_a_file_written_through_a_symlink_created_earlier()
    {
        using var t = new TempRoot();
        string outside = t.Dir("outside");
        string target = t.Sub("target");
        byte[] tar = Tar(w => { Link(w, TarEntryType.SymbolicLink, "link", outside); File_(w, "link/file", "evil"); });
        var ex = await Assert.ThrowsAsync<LayerException>(() =>
            LayerExtractor.ExtractAsync(new MemoryStream(tar), MediaTypes.LayerTar, target));
        Assert.Contains("link/file", ex.Message);
        Assert.Empty(Directory.GetFileSystemEntries(outside));
        Assert.False(Directory.Exists(target));
    }

    [Fact]
    public async Task Rejects_a_file_written_through_a_relative_symlink_that_climbs_out()
    {
        await AssertRefused(Tar(w => { Dir(w, "a/"); Link(w, TarEntryType.SymbolicLink, "a/up", "../../outside"); File_(w, "a/up/sentinel", "evil"); }),
            "a/up/sentinel");
    }

    [Fact]
    public async Task A_file_replacing_a_symlink_replaces_the_link_not_its_target()
    {
        using var t = new TempRoot();
        string sentinel = Path.Combine(t.Dir("outside"), "sentinel");
        File.WriteAllText(sentinel, "untouched");
        string target = t.Sub("target");
        byte[] tar = Tar(w => { Link(w, TarEntryType.SymbolicLink, "link", sentinel); File_(w, "link", "new"); });
        await LayerExtractor.ExtractAsync(new MemoryStream(tar), MediaTypes.LayerTar, target);
        Assert.Equal("untouched", File.ReadAllText(sentinel));
        Assert.True(LibC.Lstat(Path.Combine(target, "link")).IsRegularFile);
        Assert.Equal("new", File.ReadAllText(Path.Combine(target, "link")));
    }

    [Theory]
    [InlineData("../outside/sentinel")]
    [InlineData("/etc/passwd")]
    [InlineData("not-yet")]
    public async Task Rejects_hardlink_outside_the_target_or_to_a_file_not_yet_extracted(string linkTarget)
    {
        await AssertRefused(Tar(w => { File_(w, "ok"); Link(w, TarEntryType.HardLink, "hl", linkTarget); File_(w, "not-yet"); }), "hl");
    }

    [Fact]
    public async Task Rejects_hardlink_to_a_symlink_path_component()
    {
        await AssertRefused(Tar(w => { Link(w, TarEntryType.SymbolicLink, "l", "../outside"); Link(w, TarEntryType.HardLink, "hl", "l/sentinel"); }), "hl");
    }

    [Theory]
    [InlineData("d/.wh.")]
    [InlineData("d/.wh..")]
    [InlineData("d/.wh...")]
    [InlineData(".wh..")]
    public async Task Rejects_invalid_whiteouts(string name)
    {
        await AssertRefused(Tar(w => { Dir(w, "d/"); File_(w, name, ""); }), name);
    }

    [Fact]
    public async Task Rejects_truncated_gzip()
    {
        byte[] tar = Tar(w => { File_(w, "a", new string('x', 100_000)); File_(w, "b", new string('y', 5000)); });
        byte[] gz = Gzip(tar);
        using var t = new TempRoot();
        string target = t.Sub("target");
        var ex = await Assert.ThrowsAsync<LayerException>(() =>
            LayerExtractor.ExtractAsync(new MemoryStream(gz[..(gz.Length / 2)]), MediaTypes.LayerGzip, target));
        Assert.Contains("truncated", ex.Message);
        Assert.False(Directory.Exists(target));
    }

    [Fact]
    public async Task Rejects_tar_cut_before_its_end_marker()
    {
        byte[] tar = Tar(w => File_(w, "a"));
        await AssertRefused(tar[..1024], "truncated");
    }

    [Fact]
    public async Task Failure_in_an_existing_empty_target_leaves_it_empty()
    {
        using var t = new TempRoot();
        string target = t.Dir("target");
        byte[] tar = Tar(w => { Dir(w, "etc/"); File_(w, "etc/a"); File_(w, "../x"); });
        await Assert.ThrowsAsync<LayerException>(() => LayerExtractor.ExtractAsync(new MemoryStream(tar), MediaTypes.LayerTar, target));
        Assert.True(Directory.Exists(target));
        Assert.Empty(Directory.GetFileSystemEntries(target));
    }

    [Fact]
    public async Task Refuses_a_target_that_is_not_empty()
    {
        using var t = new TempRoot();
        string target = t.Dir("target");
        File.WriteAllText(Path.Combine(target, "x"), "");
        await Assert.ThrowsAnyAsync<IOException>(() =>
            LayerExtractor.ExtractAsync(new MemoryStream(Tar(w => File_(w, "a"))), MediaTypes.LayerTar, target));
        Assert.True(File.Exists(Path.Combine(target, "x")));
    }

    [Fact]
    public async Task Docker_gzip_layers_with_dot_slash_names_extract_in_overlay_form()
    {
        using var t = new TempRoot();
        byte[] tar = Tar(w =>
        {
            Dir(w, "./");
            Dir(w, "./etc/");
            File_(w, "./etc/.wh.motd", "");
            Dir(w, "./var/");
            File_(w, "./var/.wh..wh..opq", "");
            var setuid = new PaxTarEntry(TarEntryType.RegularFile, "./usr/bin/su")
            {
                DataStream = new MemoryStream([1, 2, 3]),
                Mode = (UnixFileMode)0x9ED,
                Uid = 0,
                Gid = 0,
                ModificationTime = DateTimeOffset.FromUnixTimeSeconds(1_234_567_890),
            };
            w.WriteEntry(setuid);
            var owned = new PaxTarEntry(TarEntryType.RegularFile, "./home/u/f") { DataStream = new MemoryStream([9]), Uid = 1000, Gid = 1000 };
            w.WriteEntry(owned);
        });
        string target = t.Sub("target");
        var diffId = await LayerExtractor.ExtractAsync(new MemoryStream(Gzip(tar)), MediaTypes.DockerLayerGzip, target);
        Assert.Equal(Digest.Compute(tar), diffId);
        Assert.True(LibC.Lstat(Path.Combine(target, "etc/motd")).IsWhiteout);
        Assert.False(File.Exists(Path.Combine(target, "etc/.wh.motd")));
        Assert.Equal("y"u8.ToArray(), LibC.GetXattr(Path.Combine(target, "var"), "trusted.overlay.opaque"));
        var su = LibC.Lstat(Path.Combine(target, "usr/bin/su"));
        Assert.Equal(0x9EDu, su.Permissions);
        Assert.Equal(1_234_567_890, su.MTimeSeconds);
        var f = LibC.Lstat(Path.Combine(target, "home/u/f"));
        Assert.Equal((1000u, 1000u), (f.Uid, f.Gid));
        Assert.Equal(0x1EDu, LibC.Lstat(Path.Combine(target, "home/u")).Permissions); // implicit parents: 0755
    }

    [Fact]
    public async Task Overlay_xattrs_inside_a_layer_are_ignored()
    {
        using var t = new TempRoot();
        byte[] tar = Tar(w => w.WriteEntry(new PaxTarEntry(TarEntryType.Directory, "d/", new Dictionary<string, string>
        {
            ["SCHILY.xattr.trusted.overlay.redirect"] = "/etc",
            ["SCHILY.xattr.user.kept"] = "v",
        })));
        string target = t.Sub("target");
        await LayerExtractor.ExtractAsync(new MemoryStream(tar), MediaTypes.LayerTar, target);
        Assert.Equal(["user.kept"], LibC.ListXattrs(Path.Combine(target, "d")));
    }
}
