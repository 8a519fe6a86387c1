using Kiln.Build.Native;
using Kiln.Build.Tests.Layers;

namespace Kiln.Build.Tests.Native;

public class LibCTests
{
    [Fact]
    public void Lstat_reports_type_mode_owner_size_and_mtime()
    {
        using var t = new TempRoot();
        string f = t.Sub("f");
        Fs.Write(f, "hello", mode: 0xDED /* 06755 */, uid: 1234, gid: 5678, mtime: 1_500_000_000);
        var st = LibC.Lstat(f);
        Assert.True(st.IsRegularFile);
        Assert.Equal(0xDEDu, st.Permissions);
        Assert.Equal(1234u, st.Uid);
        Assert.Equal(5678u, st.Gid);
        Assert.Equal(5, st.Size);
        Assert.Equal(1_500_000_000, st.MTimeSeconds);
        Assert.Equal(1ul, st.LinkCount);
    }

    [Fact]
    public void Lstat_does_not_follow_a_symlink()
    {
        using var t = new TempRoot();
        File.CreateSymbolicLink(t.Sub("link"), "/etc/passwd");
        Assert.True(LibC.Lstat(t.Sub("link")).IsSymlink);
    }

    [Fact]
    public void Missing_path_gives_null_or_an_error_naming_it()
    {
        using var t = new TempRoot();
        Assert.Null(LibC.TryLstat(t.Sub("nope")));
        var ex = Assert.ThrowsAny<IOException>(() => LibC.Lstat(t.Sub("nope")));
        Assert.Contains(t.Sub("nope"), ex.Message);
    }

    [Fact]
    public void Whiteout_is_a_char_device_zero_zero()
    {
        using var t = new TempRoot();
        LibC.MknodWhiteout(t.Sub("wh"));
        var st = LibC.Lstat(t.Sub("wh"));
        Assert.True(st.IsWhiteout);
        Assert.Equal(0u, st.Permissions);
    }

    [Fact]
    public void Device_numbers_round_trip()
    {
        using var t = new TempRoot();
        LibC.Mknod(t.Sub("dev"), LibC.S_IFBLK | 0x1B0, 259, 300);
        var st = LibC.Lstat(t.Sub("dev"));
        Assert.True(st.IsBlockDevice);
        Assert.Equal((259u, 300u), (st.RdevMajor, st.RdevMinor));
    }

    [Fact]
    public void Xattrs_are_listed_read_and_written_as_bytes()
    {
        using var t = new TempRoot();
        string f = t.Sub("f");
        File.WriteAllText(f, "");
        byte[] binary = [0x01, 0x00, 0x00, 0x02, 0xC0, 0xFF, 0x00, 0x80];
        LibC.SetXattr(f, "user.test", binary);
        LibC.SetXattr(f, "trusted.other", "x"u8);
        Assert.Equal(["trusted.other", "user.test"], LibC.ListXattrs(f));
        Assert.Equal(binary, LibC.GetXattr(f, "user.test"));
        Assert.Null(LibC.GetXattr(f, "user.absent"));
    }

    [Fact]
    public void Times_are_set_on_a_symlink_itself()
    {
        using var t = new TempRoot();
        File.WriteAllText(t.Sub("target"), "");
        LibC.SetTimesNoFollow(t.Sub("target"), 1_000);
        File.CreateSymbolicLink(t.Sub("link"), "target");
        LibC.SetTimesNoFollow(t.Sub("link"), 2_000);
        Assert.Equal(2_000, LibC.Lstat(t.Sub("link")).MTimeSeconds);
        Assert.Equal(1_000, LibC.Lstat(t.Sub("target")).MTimeSeconds);
    }
}
