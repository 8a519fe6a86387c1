using System.Formats.Tar;
using System.IO.Compression;
using Kiln.Build.Layers;
using Kiln.Build.Native;
using Kiln.Oci;

namespace Kiln.Build.Tests.Layers;

/// <summary>Hostile layers (issue 5): bombs, junk, duplicates, devices, symlink metadata, whiteout corner cases.</summary>
public partial class LayerExtractorTests
{
    private static async Task<(string Target, TempRoot Root)> ExtractOk(byte[] tar, ExtractionOptions? options = null)
    {
        var t = new TempRoot();
        string target = t.Sub("target");
        await LayerExtractor.ExtractAsync(new MemoryStream(tar), MediaTypes.LayerTar, target, options ?? ExtractionOptions.Default);
        return (target, t);
    }

    private static byte[] ZeroFileTar(long size)
    {
        var ms = new MemoryStream();
        using (var w = new TarWriter(ms, TarEntryFormat.Pax, leaveOpen: true))
        {
            w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, "bomb") { DataStream = new ZeroStream(size) });
        }
        return ms.ToArray();
    }

    private static byte[] Compress(Stream tar, bool zstd)
    {
        var ms = new MemoryStream();
        using (Stream c = zstd ? new ZstdSharp.CompressionStream(ms, 3, leaveOpen: true) : new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true))
        {
            tar.CopyTo(c);
        }
        return ms.ToArray();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Gzip_and_zstd_bombs_stop_at_the_size_cap_reading_little_and_leaving_nothing(bool zstd)
    {
        // 64 MiB of zeros in one file: tens of KiB compressed (zstd: a few KiB, read whole in one go).
        var ms = new MemoryStream();
        using (var w = new TarWriter(ms, TarEntryFormat.Pax, leaveOpen: true))
        {
            w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, "bomb") { DataStream = new ZeroStream(64L << 20) });
        }
        ms.Position = 0;
        byte[] bomb = Compress(ms, zstd);
        using var t = new TempRoot();
        string outside = t.Dir("outside");
        File.WriteAllText(Path.Combine(outside, "sentinel"), "untouched");
        string target = t.Sub("target");
        var counting = new CountingStream(new MemoryStream(bomb));
        var ex = await Assert.ThrowsAsync<LayerException>(() => LayerExtractor.ExtractAsync(counting,
            zstd ? MediaTypes.LayerZstd : MediaTypes.LayerGzip, target, new ExtractionOptions { MaxUncompressedBytes = 8 << 20 }));
        Assert.Contains("exceeds 8388608 bytes", ex.Message);
        Assert.False(Directory.Exists(target), "no partial output");
        Assert.True(zstd || counting.BytesRead < bomb.Length / 2, $"read {counting.BytesRead} of {bomb.Length} compressed bytes: it should stop at the cap");
        Assert.Equal("untouched", File.ReadAllText(Path.Combine(outside, "sentinel")));
    }

    [Fact]
    public async Task A_layer_of_exactly_the_size_cap_passes()
    {
        byte[] tar = ZeroFileTar(4096);
        using var t = new TempRoot();
        await LayerExtractor.ExtractAsync(new MemoryStream(tar), MediaTypes.LayerTar, t.Sub("target"),
            new ExtractionOptions { MaxUncompressedBytes = tar.Length });
        Assert.Equal(4096, new FileInfo(t.Sub("target/bomb")).Length);
    }

    [Fact]
    public async Task A_layer_with_more_entries_than_the_cap_is_refused_and_leaves_nothing()
    {
        byte[] tar = Tar(w =>
        {
            for (int i = 0; i < 200; i++)
            {
                File_(w, $"f{i}", "");
            }
        });
        using var t = new TempRoot();
        string target = t.Sub("target");
        var ex = await Assert.ThrowsAsync<LayerException>(() => LayerExtractor.ExtractAsync(new MemoryStream(tar), MediaTypes.LayerTar, target,
            new ExtractionOptions { MaxEntries = 100 }));
        Assert.Contains("more than 100 entries", ex.Message);
        Assert.False(Directory.Exists(target));
    }

    [Fact]
    public async Task Trailing_junk_after_the_end_marker_is_refused()
    {
        byte[] tar = Tar(w => File_(w, "a"));
        byte[] junk = [.. tar, .. Enumerable.Repeat((byte)'J', 512)];
        await AssertRefused(junk, "trailing junk");
    }

    [Fact]
    public async Task Trailing_zero_padding_is_accepted_and_counted_in_the_diff_id()
    {
        byte[] tar = [.. Tar(w => File_(w, "a")), .. new byte[10240]];
        using var t = new TempRoot();
        var diffId = await LayerExtractor.ExtractAsync(new MemoryStream(tar), MediaTypes.LayerTar, t.Sub("target"));
        Assert.Equal(Digest.Compute(tar), diffId);
    }

    [Fact]
    public async Task Trailing_junk_inside_a_gzip_stream_is_refused()
    {
        byte[] junk = Gzip([.. Tar(w => File_(w, "a")), .. "this is not tar at all, just junk bytes"u8]);
        using var t = new TempRoot();
        string target = t.Sub("target");
        await Assert.ThrowsAsync<LayerException>(() => LayerExtractor.ExtractAsync(new MemoryStream(junk), MediaTypes.LayerGzip, target));
        Assert.False(Directory.Exists(target));
    }

    [Fact]
    public async Task An_entry_shorter_than_its_header_says_is_a_clean_error()
    {
        var ms = new MemoryStream();
        using (var w = new TarWriter(ms, TarEntryFormat.Ustar, leaveOpen: true))
        {
            w.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, "short") { DataStream = new MemoryStream(new byte[3000]) });
        }
        byte[] full = ms.ToArray();
        // Header, then only 1024 of the 3072 data bytes, then an end marker: the header claims more than follows.
        byte[] cut = [.. full.AsSpan(0, 512 + 1024), .. new byte[1024]];
        await AssertRefused(cut, "truncated");
    }

    [Fact]
    public async Task Duplicate_paths_resolve_deterministically_and_the_last_entry_wins()
    {
        byte[] tar = Tar(w =>
        {
            File_(w, "f", "one");
            File_(w, "f", "two");
            w.WriteEntry(new PaxTarEntry(TarEntryType.Directory, "d/") { Mode = (UnixFileMode)0x1C0 });
            w.WriteEntry(new PaxTarEntry(TarEntryType.Directory, "d/") { Mode = (UnixFileMode)0x1ED });
            File_(w, "x", "file first");
            Dir(w, "x/");
            Dir(w, "y/");
            File_(w, "y/child", "gone");
            File_(w, "y", "file last");
            Link(w, TarEntryType.SymbolicLink, "l", "one");
            Link(w, TarEntryType.SymbolicLink, "l", "two");
        });
        var (a, ta) = await ExtractOk(tar);
        var (b, tb) = await ExtractOk(tar);
        using (ta)
        using (tb)
        {
            Assert.Equal("two", File.ReadAllText(Path.Combine(a, "f")));
            Assert.Equal(0x1EDu, LibC.Lstat(Path.Combine(a, "d")).Permissions);
            Assert.True(LibC.Lstat(Path.Combine(a, "x")).IsDirectory);
            Assert.Equal("file last", File.ReadAllText(Path.Combine(a, "y")));
            Assert.Equal("two", new FileInfo(Path.Combine(a, "l")).LinkTarget);
            Assert.Equal(Fs.Describe(a), Fs.Describe(b));
        }
    }

    [Fact]
    public async Task A_character_device_0_0_is_refused_as_a_disguised_whiteout()
    {
        await AssertRefused(Tar(w => w.WriteEntry(new PaxTarEntry(TarEntryType.CharacterDevice, "etc/passwd"))), "whiteout in disguise");
    }

    [Fact]
    public async Task Character_and_block_device_nodes_and_fifos_are_kept_as_nodes()
    {
        // Kept as they are: the sandboxes mount layers nodev, so a node can never open the host's device.
        byte[] tar = Tar(w =>
        {
            w.WriteEntry(new PaxTarEntry(TarEntryType.CharacterDevice, "null") { DeviceMajor = 1, DeviceMinor = 3 });
            w.WriteEntry(new PaxTarEntry(TarEntryType.BlockDevice, "sda") { DeviceMajor = 8, DeviceMinor = 0 });
            w.WriteEntry(new PaxTarEntry(TarEntryType.Fifo, "pipe"));
        });
        var (kept, t) = await ExtractOk(tar);
        using (t)
        {
            var chr = LibC.Lstat(Path.Combine(kept, "null"));
            Assert.True(chr.IsCharDevice);
            Assert.Equal((1u, 3u), (chr.RdevMajor, chr.RdevMinor));
            var blk = LibC.Lstat(Path.Combine(kept, "sda"));
            Assert.True(blk.IsBlockDevice);
            Assert.Equal((8u, 0u), (blk.RdevMajor, blk.RdevMinor));
            Assert.True(LibC.Lstat(Path.Combine(kept, "pipe")).IsFifo);
        }
    }

    [Theory]
    [InlineData(".")]
    [InlineData("./")]
    [InlineData("/.")]
    public async Task Symlinks_named_dot_or_slash_dot_are_refused(string name)
    {
        await AssertRefused(Tar(w => Link(w, TarEntryType.SymbolicLink, name, "/etc")), name);
    }

    [Fact]
    public async Task Owner_mode_times_and_xattrs_of_a_symlink_entry_never_touch_its_target()
    {
        using var t = new TempRoot();
        string sentinel = Path.Combine(t.Dir("outside"), "sentinel");
        Fs.Write(sentinel, "untouched", mode: 0x180, uid: 0, gid: 0, mtime: 1_000_000_000);
        byte[] tar = Tar(w =>
        {
            File_(w, "inside", "in");
            foreach (var (name, target) in new[] { ("abs", sentinel), ("rel", "inside") })
            {
                w.WriteEntry(new PaxTarEntry(TarEntryType.SymbolicLink, name, new Dictionary<string, string>
                {
                    ["SCHILY.xattr.trusted.kiln-test"] = "v",
                })
                {
                    LinkName = target,
                    Mode = (UnixFileMode)0x1FF,
                    Uid = 4321,
                    Gid = 4321,
                    ModificationTime = DateTimeOffset.FromUnixTimeSeconds(1_500_000_000),
                });
            }
        });
        string dst = t.Sub("target");
        await LayerExtractor.ExtractAsync(new MemoryStream(tar), MediaTypes.LayerTar, dst);

        var s = LibC.Lstat(sentinel);
        Assert.Equal((0x180u, 0u, 0u, 1_000_000_000L), (s.Permissions, s.Uid, s.Gid, s.MTimeSeconds));
        Assert.Empty(LibC.ListXattrs(sentinel));
        Assert.Equal("untouched", File.ReadAllText(sentinel));
        var inside = LibC.Lstat(Path.Combine(dst, "inside"));
        Assert.Equal((0u, 0u), (inside.Uid, inside.Gid));
        Assert.DoesNotContain("trusted.kiln-test", LibC.ListXattrs(Path.Combine(dst, "inside")));
        var link = LibC.Lstat(Path.Combine(dst, "abs"));
        Assert.True(link.IsSymlink);
        Assert.Equal((4321u, 4321u, 1_500_000_000L), (link.Uid, link.Gid, link.MTimeSeconds));
        Assert.Contains("trusted.kiln-test", LibC.ListXattrs(Path.Combine(dst, "abs")));
    }

    [Fact]
    public async Task A_symlink_replaced_by_a_directory_is_a_real_directory_and_nothing_goes_through_the_link()
    {
        using var t = new TempRoot();
        string outside = t.Dir("outside");
        byte[] tar = Tar(w => { Link(w, TarEntryType.SymbolicLink, "x", outside); Dir(w, "x/"); File_(w, "x/f", "in"); });
        string dst = t.Sub("target");
        await LayerExtractor.ExtractAsync(new MemoryStream(tar), MediaTypes.LayerTar, dst);
        Assert.True(LibC.Lstat(Path.Combine(dst, "x")).IsDirectory);
        Assert.Equal("in", File.ReadAllText(Path.Combine(dst, "x/f")));
        Assert.Empty(Directory.GetFileSystemEntries(outside));
    }

    [Fact]
    public async Task A_hardlink_to_a_directory_is_refused_never_copied()
    {
        await AssertRefused(Tar(w => { Dir(w, "d/"); File_(w, "d/f"); Link(w, TarEntryType.HardLink, "hl", "d"); }), "hl");
    }

    [Fact]
    public async Task A_hardlink_shares_its_targets_inode()
    {
        var (dst, t) = await ExtractOk(Tar(w => { File_(w, "a", "x"); Link(w, TarEntryType.HardLink, "b", "a"); }));
        using (t)
        {
            Assert.Equal(LibC.Lstat(Path.Combine(dst, "a")).Inode, LibC.Lstat(Path.Combine(dst, "b")).Inode);
        }
    }

    [Fact]
    public async Task An_opaque_look_alike_is_not_opaque()
    {
        var (dst, t) = await ExtractOk(Tar(w => { Dir(w, "d/"); File_(w, "d/.wh..wh..opqX", ""); File_(w, "d/keep"); }));
        using (t)
        {
            Assert.Null(LibC.GetXattr(Path.Combine(dst, "d"), "trusted.overlay.opaque"));
            Assert.Equal(["keep"], Directory.GetFileSystemEntries(Path.Combine(dst, "d")).Select(Path.GetFileName));
        }
    }

    [Fact]
    public async Task An_opaque_marker_after_its_siblings_acts_as_if_it_came_first()
    {
        var (first, t1) = await ExtractOk(Tar(w => { Dir(w, "d/"); File_(w, "d/.wh..wh..opq", ""); File_(w, "d/a"); File_(w, "d/b"); }));
        var (last, t2) = await ExtractOk(Tar(w => { Dir(w, "d/"); File_(w, "d/a"); File_(w, "d/b"); File_(w, "d/.wh..wh..opq", ""); }));
        using (t1)
        using (t2)
        {
            Assert.Equal("y"u8.ToArray(), LibC.GetXattr(Path.Combine(last, "d"), "trusted.overlay.opaque"));
            Assert.Equal(["a", "b"], Directory.GetFileSystemEntries(Path.Combine(last, "d")).Select(Path.GetFileName).Order());
            Assert.Equal(Fs.Describe(first), Fs.Describe(last));
        }
    }

    [Fact]
    public async Task A_whiteout_never_removes_a_file_or_directory_of_its_own_layer_in_either_order()
    {
        var (after, t1) = await ExtractOk(Tar(w => { File_(w, "f", "mine"); File_(w, ".wh.f", ""); Dir(w, "d/"); File_(w, "d/x"); File_(w, ".wh.d", ""); }));
        var (before, t2) = await ExtractOk(Tar(w => { File_(w, ".wh.f", ""); File_(w, "f", "mine"); File_(w, ".wh.d", ""); Dir(w, "d/"); File_(w, "d/x"); }));
        using (t1)
        using (t2)
        {
            Assert.Equal("mine", File.ReadAllText(Path.Combine(after, "f")));
            Assert.True(File.Exists(Path.Combine(after, "d/x")));
            // the directory stays, and hides what lower layers hold there, as the whiteout asked
            Assert.Equal("y"u8.ToArray(), LibC.GetXattr(Path.Combine(after, "d"), "trusted.overlay.opaque"));
            Assert.Equal(Fs.Describe(after), Fs.Describe(before));
        }
    }

    private sealed class ZeroStream(long length) : Stream
    {
        private long _position;
        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position { get => _position; set => _position = value; }
        public override void Flush() { }

        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = (int)Math.Min(count, length - _position);
            Array.Clear(buffer, offset, n);
            _position += n;
            return n;
        }

        public override long Seek(long offset, SeekOrigin origin) => _position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            _ => length + offset,
        };

        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    private sealed class CountingStream(Stream inner) : Stream
    {
        public long BytesRead { get; private set; }
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }

        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = inner.Read(buffer, offset, count);
            BytesRead += n;
            return n;
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
