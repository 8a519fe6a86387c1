using Kiln.Build.Layers;
using Kiln.Build.Native;

namespace Kiln.Build.Tests.Layers;

public class SafePathTests
{
    [Fact]
    public void Resolves_through_a_lower_layer_symlink_parent_to_the_image_etc()
    {
        using var t = new TempRoot();
        string upper = t.Dir("upper"), lower = t.Dir("lower");
        Directory.CreateDirectory(Path.Combine(lower, "etc"));
        Fs.Symlink(Path.Combine(lower, "etc2"), "/etc");
        string[] stack = [upper, lower];
        Assert.Equal("/etc/passwd", SafePath.Resolve(stack, "/etc2/passwd"));
        Assert.Equal("/etc", SafePath.Resolve(stack, "/etc2"));
        Assert.Equal("/etc2", SafePath.Resolve(stack, "/etc2", followLast: false));
        Assert.Equal(Path.Combine(upper, "etc/passwd"), SafePath.Join(upper, SafePath.Resolve(stack, "/etc2/passwd")));
    }

    [Fact]
    public void A_symlink_in_a_lower_layer_replaced_by_a_directory_in_an_upper_one_is_that_directory()
    {
        using var t = new TempRoot();
        string upper = t.Dir("upper"), lower = t.Dir("lower");
        Fs.Write(Path.Combine(lower, "etc/passwd"), "root");
        Fs.Symlink(Path.Combine(lower, "x"), "/etc");
        Fs.Write(Path.Combine(upper, "x/own"), "mine");
        string[] stack = [upper, lower];
        Assert.Equal("/x/passwd", SafePath.Resolve(stack, "/x/passwd"));
        Assert.Null(SafePath.Lookup(stack, "/x/passwd")); // the lower link is not merged into the upper dir
        Assert.Equal(0, SafePath.Lookup(stack, "/x/own")!.LayerIndex);
        Assert.Equal(ImageEntryKind.Directory, SafePath.Lookup(stack, "/x")!.Kind);
    }

    [Fact]
    public void Relative_links_climbing_past_the_root_stay_inside()
    {
        using var t = new TempRoot();
        string layer = t.Dir("layer");
        Directory.CreateDirectory(Path.Combine(layer, "a/b/c"));
        Fs.Symlink(Path.Combine(layer, "a/b/c/up"), "../../../../../../../etc");
        Fs.Symlink(Path.Combine(layer, "a/abs"), "/../../usr/./lib/");
        Assert.Equal("/etc/shadow", SafePath.Resolve([layer], "/a/b/c/up/shadow"));
        Assert.Equal("/usr/lib/x", SafePath.Resolve([layer], "/a/abs/x"));
        Assert.Equal("/", SafePath.Resolve([layer], "/../../.."));
    }

    [Fact]
    public void Links_are_read_from_the_topmost_layer_that_has_them()
    {
        using var t = new TempRoot();
        string top = t.Dir("top"), bottom = t.Dir("bottom");
        Fs.Symlink(Path.Combine(bottom, "lib"), "/old");
        Fs.Symlink(Path.Combine(top, "lib"), "usr/lib");
        Assert.Equal("/usr/lib/libc.so", SafePath.Resolve([top, bottom], "/lib/libc.so"));
    }

    [Fact]
    public void Whiteouts_and_opaque_dirs_hide_lower_entries()
    {
        using var t = new TempRoot();
        string top = t.Dir("top"), bottom = t.Dir("bottom");
        Fs.Symlink(Path.Combine(bottom, "etc/link"), "/hidden-target");
        Fs.Write(Path.Combine(bottom, "etc/motd"), "hi");
        Fs.Write(Path.Combine(bottom, "etc/keep"), "kept");
        Fs.Write(Path.Combine(bottom, "var/cache/old"), "old");
        Directory.CreateDirectory(Path.Combine(top, "etc"));
        LibC.MknodWhiteout(Path.Combine(top, "etc/link"));
        LibC.MknodWhiteout(Path.Combine(top, "etc/motd"));
        Directory.CreateDirectory(Path.Combine(top, "var/cache"));
        LibC.SetXattr(Path.Combine(top, "var/cache"), "trusted.overlay.opaque", "y"u8);
        string[] stack = [top, bottom];

        Assert.Equal("/etc/link/x", SafePath.Resolve(stack, "/etc/link/x")); // the link is gone: nothing to follow
        Assert.Null(SafePath.Lookup(stack, "/etc/motd"));
        Assert.Null(SafePath.Lookup(stack, "/var/cache/old"));
        var cache = SafePath.Lookup(stack, "/var/cache");
        Assert.NotNull(cache);
        Assert.Equal((ImageEntryKind.Directory, 0), (cache.Kind, cache.LayerIndex));
        Assert.Equal(0, SafePath.Lookup(stack, "/var")!.LayerIndex);
        Assert.Equal(1, SafePath.Lookup(stack, "/etc/keep")!.LayerIndex);
    }

    [Fact]
    public void A_directory_lists_what_the_merged_view_shows_of_it()
    {
        using var t = new TempRoot();
        string top = t.Dir("top"), middle = t.Dir("middle"), bottom = t.Dir("bottom");
        Fs.Write(Path.Combine(bottom, "etc/conf.d/a"), "a");
        Fs.Write(Path.Combine(bottom, "etc/conf.d/b"), "b");
        Fs.Write(Path.Combine(bottom, "var/cache/old"), "old");
        Fs.Write(Path.Combine(middle, "etc/conf.d/a"), "a2");
        Fs.Write(Path.Combine(middle, "etc/conf.d/c"), "c");
        Directory.CreateDirectory(Path.Combine(top, "etc/conf.d"));
        LibC.MknodWhiteout(Path.Combine(top, "etc/conf.d/b"));
        Fs.Write(Path.Combine(top, "etc/conf.d/d"), "d");
        Fs.Write(Path.Combine(top, "var/cache/new"), "new");
        LibC.SetXattr(Path.Combine(top, "var/cache"), "trusted.overlay.opaque", "y"u8);
        Fs.Write(Path.Combine(middle, "file"), "not a dir");
        string[] stack = [top, middle, bottom];

        var conf = SafePath.List(stack, "/etc/conf.d");
        Assert.Equal(["a", "c", "d"], conf.Select(e => Path.GetFileName(e.ImagePath)));
        Assert.Equal([1, 1, 0], conf.Select(e => e.LayerIndex));
        Assert.Equal(["/var/cache/new"], SafePath.List(stack, "/var/cache").Select(e => e.ImagePath));
        Assert.Empty(SafePath.List(stack, "/file"));
        Assert.Empty(SafePath.List(stack, "/nosuch"));
    }

    [Fact]
    public void Lookup_reports_kind_mode_and_owner_of_the_topmost_entry()
    {
        using var t = new TempRoot();
        string top = t.Dir("top"), bottom = t.Dir("bottom");
        Fs.Write(Path.Combine(bottom, "f"), "old", mode: 0x1A4);
        Fs.Write(Path.Combine(top, "f"), "new", mode: 0x9ED, uid: 7, gid: 8);
        var entry = SafePath.Lookup([top, bottom], "/f");
        Assert.Equal(new ImageEntry("/f", Path.Combine(top, "f"), 0, ImageEntryKind.File, 0x9ED, 7, 8), entry);
    }

    [Fact]
    public void Symlink_loops_are_an_error()
    {
        using var t = new TempRoot();
        string layer = t.Dir("layer");
        Fs.Symlink(Path.Combine(layer, "a"), "b");
        Fs.Symlink(Path.Combine(layer, "b"), "/a");
        var ex = Assert.Throws<LayerException>(() => SafePath.Resolve([layer], "/a/x"));
        Assert.Contains("symbolic links", ex.Message);
        Assert.Equal("/a", SafePath.Resolve([layer], "/a", followLast: false));
    }

    [Fact]
    public void Forty_links_are_followed_but_not_forty_one()
    {
        using var t = new TempRoot();
        string layer = t.Dir("layer");
        Directory.CreateDirectory(Path.Combine(layer, "end"));
        for (int i = 0; i < 41; i++)
        {
            Fs.Symlink(Path.Combine(layer, "l" + i), i == 40 ? "end" : "l" + (i + 1));
        }
        Assert.Equal("/end", SafePath.Resolve([layer], "/l1"));
        Assert.Throws<LayerException>(() => SafePath.Resolve([layer], "/l0"));
    }

    [Fact]
    public void Host_symlinks_above_a_layer_entry_are_never_followed_into_the_host()
    {
        using var t = new TempRoot();
        string top = t.Dir("top"), bottom = t.Dir("bottom");
        // in the lower layer /x is a link; the upper layer has a real dir /x: the lower link must not be used
        Fs.Symlink(Path.Combine(bottom, "x"), "/etc");
        Directory.CreateDirectory(Path.Combine(top, "x"));
        Assert.Equal("/x/passwd", SafePath.Resolve([top, bottom], "/x/passwd"));
        Assert.Null(SafePath.Lookup([top, bottom], "/x/passwd"));
    }

    [Theory]
    [InlineData("relative")]
    [InlineData("/a/../b")]
    [InlineData("/a//b")]
    [InlineData("/a/./b")]
    public void Join_refuses_paths_that_are_not_normalised(string path)
    {
        Assert.Throws<LayerException>(() => SafePath.Join("/srv/root", path));
    }

    [Fact]
    public void Join_maps_under_the_host_root()
    {
        Assert.Equal("/srv/root/etc/passwd", SafePath.Join("/srv/root/", "/etc/passwd"));
        Assert.Equal("/srv/root", SafePath.Join("/srv/root", "/"));
    }

    [Fact]
    public void Resolve_refuses_relative_paths()
    {
        Assert.Throws<LayerException>(() => SafePath.Resolve(["/nonexistent"], "etc"));
    }
}
