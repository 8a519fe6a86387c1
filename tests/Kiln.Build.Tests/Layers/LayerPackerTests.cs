using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using Kiln.Build.Layers;
using Kiln.Build.Native;
using Kiln.Oci;
using TarEntry = System.Formats.Tar.TarEntry;

namespace Kiln.Build.Tests.Layers;

public class LayerPackerTests
{
    private static readonly DateTimeOffset Epoch = DateTimeOffset.FromUnixTimeSeconds(1_700_000_000);

    internal static void BuildSampleTree(string root)
    {
        Fs.Write(Path.Combine(root, "etc/hostname"), "kiln\n", mode: 0x1A4);
        Fs.Write(Path.Combine(root, "usr/bin/sudo"), "#!binary", mode: 0x9ED /* 04755 */, uid: 0, gid: 0);
        Fs.Write(Path.Combine(root, "usr/bin/ping"), "ping", mode: 0x1ED);
        LibC.SetXattr(Path.Combine(root, "usr/bin/ping"), "security.capability",
            [0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0xFF, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
        Fs.Write(Path.Combine(root, "home/user/notes.txt"), "notes", mode: 0x180, uid: 1000, gid: 1001);
        LibC.SetXattr(Path.Combine(root, "home/user/notes.txt"), "user.test", "hello"u8);
        LibC.Lchown(Path.Combine(root, "home/user"), 1000, 1001);
        LibC.Chmod(Path.Combine(root, "home/user"), 0x1C0);
        Directory.CreateDirectory(Path.Combine(root, "tmp"));
        LibC.Chmod(Path.Combine(root, "tmp"), 0x3FF); // 01777
        Fs.Symlink(Path.Combine(root, "bin"), "usr/bin");
        Fs.Symlink(Path.Combine(root, "etc/abs"), "/etc/hostname");
        LibC.Link(Path.Combine(root, "etc/hostname"), Path.Combine(root, "etc/hostname.hardlink"));
        LibC.Mknod(Path.Combine(root, "fifo"), LibC.S_IFIFO | 0x1A4);
        LibC.Mknod(Path.Combine(root, "null"), LibC.S_IFCHR | 0x1B6, 1, 3);
        var big = new byte[9 << 20];
        new Random(7).NextBytes(big);
        File.WriteAllBytes(Path.Combine(root, "big.bin"), big);
        string longDir = Path.Combine(root, new string('d', 90), new string('e', 60));
        Fs.Write(Path.Combine(longDir, "long-name-file-ü"), "long");
    }

    internal static async Task<(PackedLayer Layer, byte[] Blob)> PackAsync(string dir, Compression compression)
    {
        var ms = new MemoryStream();
        var layer = await LayerPacker.PackAsync(dir, ms, compression, Epoch);
        return (layer, ms.ToArray());
    }

    internal static byte[] Decompress(byte[] blob, Compression compression)
    {
        using Stream s = compression == Compression.Gzip
            ? new GZipStream(new MemoryStream(blob), CompressionMode.Decompress)
            : new ZstdSharp.DecompressionStream(new MemoryStream(blob));
        var ms = new MemoryStream();
        s.CopyTo(ms);
        return ms.ToArray();
    }

    internal static List<TarEntry> ReadTar(byte[] tar)
    {
        var list = new List<TarEntry>();
        using var reader = new TarReader(new MemoryStream(tar));
        while (reader.GetNextEntry() is { } e)
        {
            list.Add(e);
        }
        return list;
    }

    [Theory]
    [InlineData(Compression.Gzip)]
    [InlineData(Compression.Zstd)]
    public async Task Pack_then_extract_gives_the_same_tree(Compression compression)
    {
        using var t = new TempRoot();
        string src = t.Dir("src");
        BuildSampleTree(src);
        var (layer, blob) = await PackAsync(src, compression);
        string dst = t.Sub("dst");
        var diffId = await LayerExtractor.ExtractAsync(new MemoryStream(blob), layer.MediaType, dst);

        Assert.Equal(layer.DiffId, diffId);
        Assert.Equal(Fs.Describe(src), Fs.Describe(dst));
        var a = LibC.Lstat(Path.Combine(dst, "etc/hostname"));
        var b = LibC.Lstat(Path.Combine(dst, "etc/hostname.hardlink"));
        Assert.Equal(a.Inode, b.Inode);
        Assert.Equal(Math.Min(1_600_000_000, Epoch.ToUnixTimeSeconds()), a.MTimeSeconds);
    }

    [Theory]
    [InlineData(Compression.Gzip, MediaTypes.LayerGzip)]
    [InlineData(Compression.Zstd, MediaTypes.LayerZstd)]
    public async Task Digests_size_and_media_type_describe_the_bytes_written(Compression compression, string mediaType)
    {
        using var t = new TempRoot();
        string src = t.Dir("src");
        BuildSampleTree(src);
        var (layer, blob) = await PackAsync(src, compression);
        Assert.Equal(mediaType, layer.MediaType);
        Assert.Equal(blob.LongLength, layer.Size);
        Assert.Equal(Digest.Compute(blob), layer.Digest);
        Assert.Equal(Digest.Compute(Decompress(blob, compression)), layer.DiffId);
    }

    [Theory]
    [InlineData(Compression.Gzip)]
    [InlineData(Compression.Zstd)]
    public async Task Packing_twice_gives_identical_digests(Compression compression)
    {
        using var t = new TempRoot();
        string src = t.Dir("src");
        BuildSampleTree(src);
        var (first, blob1) = await PackAsync(src, compression);
        // a copy made later (new inodes, new ctimes) packs the same
        string copy = t.Sub("copy");
        TempRoot.Run("cp", "-a", src, copy);
        var (second, blob2) = await PackAsync(copy, compression);
        Assert.Equal(first, second);
        Assert.Equal(blob1, blob2);
    }

    [Fact]
    public async Task Entries_are_sorted_with_each_directory_before_its_children_and_no_leading_dot()
    {
        using var t = new TempRoot();
        string src = t.Dir("src");
        Fs.Write(Path.Combine(src, "a/x"), "1");
        Fs.Write(Path.Combine(src, "a-b"), "2");
        Fs.Write(Path.Combine(src, "a0"), "3");
        Fs.Write(Path.Combine(src, "B"), "4");
        var (_, blob) = await PackAsync(src, Compression.Gzip);
        var names = ReadTar(Decompress(blob, Compression.Gzip)).Select(e => e.Name).ToList();
        Assert.Equal(["B", "a-b", "a/", "a/x", "a0"], names);
    }

    [Fact]
    public async Task Mtimes_are_clamped_to_the_epoch_in_whole_seconds_and_owner_names_are_empty()
    {
        using var t = new TempRoot();
        string src = t.Dir("src");
        Fs.Write(Path.Combine(src, "old"), "o", mtime: 1_000_000_000);
        Fs.Write(Path.Combine(src, "new"), "n", mtime: 1_800_000_000);
        LibC.SetTimesNoFollow(Path.Combine(src, "old"), 1_000_000_000, 999_999_999);
        var (_, blob) = await PackAsync(src, Compression.Gzip);
        var entries = ReadTar(Decompress(blob, Compression.Gzip)).ToDictionary(e => e.Name);
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1_000_000_000), entries["old"].ModificationTime);
        Assert.Equal(Epoch, entries["new"].ModificationTime);
        Assert.All(entries.Values, e => Assert.Equal("", ((PosixTarEntry)e).UserName));
        Assert.All(entries.Values.OfType<PaxTarEntry>(), e =>
        {
            Assert.DoesNotContain("atime", e.ExtendedAttributes.Keys);
            Assert.DoesNotContain("ctime", e.ExtendedAttributes.Keys);
        });
    }

    [Fact]
    public async Task Gnu_tar_lists_the_layer_with_xattrs_and_special_modes()
    {
        using var t = new TempRoot();
        string src = t.Dir("src");
        BuildSampleTree(src);
        var (_, blob) = await PackAsync(src, Compression.Gzip);
        string file = t.Sub("layer.tar.gz");
        File.WriteAllBytes(file, blob);
        string dst = t.Dir("gnu");
        TempRoot.Run("tar", "--xattrs", "--xattrs-include=*", "--same-owner", "-xpzf", file, "-C", dst);
        Assert.Equal(Fs.Describe(src), Fs.Describe(dst));
    }

    [Fact]
    public async Task Overlay_upper_dir_packs_deletions_as_whiteouts_and_recreated_dirs_as_opaque()
    {
        using var t = new TempRoot();
        string lower = t.Dir("lower"), upper = t.Dir("upper"), work = t.Dir("work"), merged = t.Dir("merged");
        Fs.Write(Path.Combine(lower, "etc/motd"), "hi");
        Fs.Write(Path.Combine(lower, "etc/keep"), "keep");
        Fs.Write(Path.Combine(lower, "var/cache/a"), "a");
        Fs.Write(Path.Combine(lower, "var/cache/b"), "b");
        t.MountOverlay(lower, upper, work, merged);
        File.Delete(Path.Combine(merged, "etc/motd"));
        Directory.Delete(Path.Combine(merged, "var/cache"), recursive: true);
        Directory.CreateDirectory(Path.Combine(merged, "var/cache"));
        File.WriteAllText(Path.Combine(merged, "var/cache/new"), "new");
        File.WriteAllText(Path.Combine(merged, "scratch"), "x");
        File.Delete(Path.Combine(merged, "scratch")); // upper-only: leaves no whiteout
        t.Unmount(merged);

        var (layer, blob) = await PackAsync(upper, Compression.Gzip);
        var entries = ReadTar(Decompress(blob, Compression.Gzip));
        var names = entries.Select(e => e.Name).ToList();
        Assert.Equal(["etc/", "etc/.wh.motd", "var/", "var/cache/", "var/cache/.wh..wh..opq", "var/cache/new"], names);
        var whiteout = entries[1];
        Assert.Equal(TarEntryType.RegularFile, whiteout.EntryType);
        Assert.Equal(0, whiteout.Length);
        Assert.Equal((UnixFileMode)0, whiteout.Mode);
        Assert.Equal(0, whiteout.Uid);
        Assert.All(entries.OfType<PaxTarEntry>(), e =>
            Assert.DoesNotContain(e.ExtendedAttributes.Keys, k => k.StartsWith("SCHILY.xattr.trusted.overlay.", StringComparison.Ordinal)));

        // and extraction turns them back into overlay form
        string dst = t.Sub("dst");
        await LayerExtractor.ExtractAsync(new MemoryStream(blob), layer.MediaType, dst);
        Assert.True(LibC.Lstat(Path.Combine(dst, "etc/motd")).IsWhiteout);
        Assert.Equal("y"u8.ToArray(), LibC.GetXattr(Path.Combine(dst, "var/cache"), "trusted.overlay.opaque"));
        Assert.Null(LibC.GetXattr(Path.Combine(dst, "var"), "trusted.overlay.opaque"));
    }

    [Fact]
    public async Task Opaque_marker_comes_right_after_its_directory_even_before_earlier_sorting_names()
    {
        using var t = new TempRoot();
        string src = t.Dir("src");
        Fs.Write(Path.Combine(src, "d/!first"), "x");
        LibC.SetXattr(Path.Combine(src, "d"), "trusted.overlay.opaque", "y"u8);
        var (_, blob) = await PackAsync(src, Compression.Zstd);
        var names = ReadTar(Decompress(blob, Compression.Zstd)).Select(e => e.Name).ToList();
        Assert.Equal(["d/", "d/.wh..wh..opq", "d/!first"], names);
    }

    [Fact]
    public async Task Later_names_of_a_hard_linked_file_become_link_entries()
    {
        using var t = new TempRoot();
        string src = t.Dir("src");
        Fs.Write(Path.Combine(src, "b"), "same");
        LibC.Link(Path.Combine(src, "b"), Path.Combine(src, "a"));
        LibC.Link(Path.Combine(src, "b"), Path.Combine(src, "c"));
        var (_, blob) = await PackAsync(src, Compression.Gzip);
        var entries = ReadTar(Decompress(blob, Compression.Gzip));
        Assert.Equal(TarEntryType.RegularFile, entries[0].EntryType);
        Assert.Equal("a", entries[0].Name);
        Assert.Equal((TarEntryType.HardLink, "a"), (entries[1].EntryType, entries[1].LinkName));
        Assert.Equal((TarEntryType.HardLink, "a"), (entries[2].EntryType, entries[2].LinkName));
    }

    [Fact]
    public async Task Destination_stream_is_left_open()
    {
        using var t = new TempRoot();
        string src = t.Dir("src");
        Fs.Write(Path.Combine(src, "f"), "x");
        var ms = new MemoryStream();
        await LayerPacker.PackAsync(src, ms, Compression.Gzip, Epoch);
        Assert.True(ms.CanWrite);
    }

    [Fact]
    public async Task A_failing_destination_fails_the_pack_instead_of_hanging()
    {
        using var t = new TempRoot();
        string src = t.Dir("src");
        BuildSampleTree(src);
        var pack = LayerPacker.PackAsync(src, new FailingStream(), Compression.Gzip, Epoch);
        var finished = await Task.WhenAny(pack, Task.Delay(TimeSpan.FromSeconds(30)));
        Assert.Same(pack, finished);
        await Assert.ThrowsAsync<IOException>(() => pack);
    }

    [Fact]
    public async Task A_cancelled_pack_throws_operation_cancelled()
    {
        using var t = new TempRoot();
        string src = t.Dir("src");
        BuildSampleTree(src);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            LayerPacker.PackAsync(src, new MemoryStream(), Compression.Zstd, Epoch, cts.Token));
    }

    private sealed class FailingStream : MemoryStream
    {
        public override void Write(byte[] buffer, int offset, int count) => throw new IOException("disk full");
        public override void Write(ReadOnlySpan<byte> buffer) => throw new IOException("disk full");
    }
}
