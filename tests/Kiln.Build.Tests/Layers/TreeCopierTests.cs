using System.Net.Sockets;
using Kiln.Build.Layers;
using Kiln.Build.Native;
using Kiln.Oci;

namespace Kiln.Build.Tests.Layers;

public class TreeCopierTests
{
    /// <summary>The sample tree of the packer's tests, plus what only an overlay upper dir holds: a whiteout, an
    /// opaque dir, overlay bookkeeping that names the source's inodes, a socket; and odd mtimes on dirs.</summary>
    private static void BuildUpperTree(string root)
    {
        LayerPackerTests.BuildSampleTree(root);
        LibC.MknodWhiteout(Path.Combine(root, "etc/removed"));
        Directory.CreateDirectory(Path.Combine(root, "var/lib/opaque"));
        File.WriteAllText(Path.Combine(root, "var/lib/opaque/kept"), "kept");
        LibC.SetXattr(Path.Combine(root, "var/lib/opaque"), LayerPacker.OpaqueXattr, "y"u8);
        LibC.SetXattr(Path.Combine(root, "etc/hostname"), "trusted.overlay.origin", [0, 1, 2, 3]);
        using (var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            socket.Bind(new UnixDomainSocketEndPoint(Path.Combine(root, "run.sock")));
        }
        for (int i = 0; i < 40; i++)
        {
            File.WriteAllText(Path.Combine(root, "etc", $"many-{i:D2}"), new string('x', i));
        }
        LibC.SetTimesNoFollow(Path.Combine(root, "etc/abs"), 1_600_000_000, 5);
        LibC.SetTimesNoFollow(Path.Combine(root, "etc"), 1_500_000_000, 123_456_789);
        LibC.SetTimesNoFollow(Path.Combine(root, "home/user"), 1_400_000_000, 1);
        LibC.SetTimesNoFollow(root, 1_300_000_000, 2);
    }

    /// <summary>Each entry as text; overlay bookkeeping other than the opaque mark is left out (not copied).</summary>
    private static SortedDictionary<string, string> Describe(string root)
    {
        var entries = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var inodes = new Dictionary<ulong, string>();
        foreach (var path in Directory.EnumerateFileSystemEntries(root, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
                     .Append(root).Order(StringComparer.Ordinal))
        {
            var rel = path == root ? "." : Path.GetRelativePath(root, path);
            var st = LibC.Lstat(path);
            var xattrs = string.Join(",", LibC.ListXattrs(path)
                .Where(n => !n.StartsWith(LayerPacker.OverlayXattrPrefix, StringComparison.Ordinal) || n == LayerPacker.OpaqueXattr)
                .Select(n => n + "=" + Convert.ToHexString(LibC.GetXattr(path, n) ?? [])));
            string content = st.IsRegularFile ? Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(path)))
                : st.IsSymlink ? new FileInfo(path).LinkTarget! : "";
            string link = "";
            if (st.IsRegularFile && st.LinkCount > 1)
            {
                link = inodes.TryGetValue(st.Inode, out var first) ? "link of " + first : "";
                inodes.TryAdd(st.Inode, rel);
            }
            entries[rel] = $"mode {st.Mode:X} owner {st.Uid}:{st.Gid} mtime {st.MTimeSeconds}.{st.MTimeNanoseconds:D9} " +
                $"dev {st.RdevMajor}:{st.RdevMinor} size {(st.IsDirectory ? 0 : st.Size)} {content} {link} xattrs [{xattrs}]";
        }
        return entries;
    }

    [Fact]
    public async Task A_copy_keeps_every_type_owner_mode_mtime_xattr_and_hard_link_and_packs_to_the_same_layer()
    {
        using var t = new TempRoot();
        var source = t.Dir("upper");
        var copy = t.Dir("copy");
        BuildUpperTree(source);

        TreeCopier.Copy(source, copy, threads: 8);

        var expected = Describe(source);
        expected.Remove("run.sock"); // a layer cannot hold a socket
        var actual = Describe(copy);
        Assert.Equal(expected.Keys, actual.Keys);
        foreach (var (rel, description) in expected)
        {
            Assert.True(description == actual[rel], $"{rel}:\n  source {description}\n  copy   {actual[rel]}");
        }
        Assert.Contains("link of etc/hostname", actual["etc/hostname.hardlink"]);
        Assert.Contains("trusted.overlay.opaque=79", actual["var/lib/opaque"]);
        Assert.Contains("security.capability=", actual["usr/bin/ping"]);
        Assert.StartsWith("mode 89ED ", actual["usr/bin/sudo"]); // setuid kept after the chown
        Assert.True(LibC.Lstat(Path.Combine(copy, "etc/removed")).IsWhiteout);
        Assert.Null(LibC.GetXattr(Path.Combine(copy, "etc/hostname"), "trusted.overlay.origin"));

        File.Delete(Path.Combine(source, "run.sock"));
        var fromSource = await LayerPackerTests.PackAsync(source, Compression.Gzip);
        var fromCopy = await LayerPackerTests.PackAsync(copy, Compression.Gzip);
        Assert.Equal(fromSource.Layer.DiffId, fromCopy.Layer.DiffId);
    }

    [Fact]
    public void A_file_with_holes_is_copied_with_its_holes_and_the_same_bytes()
    {
        using var t = new TempRoot();
        var source = t.Dir("upper");
        var copy = t.Dir("copy");
        const long Size = 64L << 20;
        var middle = Path.Combine(source, "middle");
        using (var f = File.OpenHandle(middle, FileMode.CreateNew, FileAccess.Write))
        {
            RandomAccess.SetLength(f, Size);
            RandomAccess.Write(f, Enumerable.Range(0, 10_000).Select(i => (byte)(i % 251)).ToArray(), 20L << 20);
            RandomAccess.Write(f, "end"u8, Size - 3);
        }
        var empty = Path.Combine(source, "all-hole");
        using (var f = File.OpenHandle(empty, FileMode.CreateNew, FileAccess.Write))
        {
            RandomAccess.SetLength(f, Size);
        }
        Assert.True(LibC.Lstat(middle).MayHaveHoles, "this filesystem kept no hole in the source");

        TreeCopier.Copy(source, copy, threads: 2);

        foreach (var name in new[] { "middle", "all-hole" })
        {
            var from = LibC.Lstat(Path.Combine(source, name));
            var to = LibC.Lstat(Path.Combine(copy, name));
            Assert.Equal(Size, to.Size);
            Assert.True(to.Blocks * 512 <= (1L << 20), $"{name}: {to.Blocks * 512} bytes on disk for {from.Blocks * 512} in the source");
            Assert.Equal(Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(Path.Combine(source, name)))),
                Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(Path.Combine(copy, name)))));
        }
    }

    [Fact]
    public void A_copy_into_a_destination_that_already_holds_a_name_fails_with_that_name()
    {
        using var t = new TempRoot();
        var source = t.Dir("upper");
        var copy = t.Dir("copy");
        for (int i = 0; i < 50; i++)
        {
            File.WriteAllText(Path.Combine(source, $"f{i:D2}"), "new");
        }
        File.WriteAllText(Path.Combine(copy, "f17"), "already there");

        var e = Assert.ThrowsAny<IOException>(() => TreeCopier.Copy(source, copy, threads: 4));

        Assert.Contains("f17", e.Message);
        Assert.Equal("already there", File.ReadAllText(Path.Combine(copy, "f17")));
    }
}
