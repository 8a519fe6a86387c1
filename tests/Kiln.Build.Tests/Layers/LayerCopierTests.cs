using Kiln.Build.Layers;
using Kiln.Build.Native;

namespace Kiln.Build.Tests.Layers;

public class LayerCopierTests
{
    [Fact]
    public async Task Writes_through_a_lower_layer_symlink_parent_into_the_upper_dir()
    {
        using var t = new TempRoot();
        string context = t.Dir("ctx"), upper = t.Dir("upper"), lower = t.Dir("lower");
        Fs.Write(Path.Combine(context, "site/index.html"), "<h1>Hello</h1>", mode: 0x180);
        Directory.CreateDirectory(Path.Combine(lower, "srv/www"));
        LibC.Lchown(Path.Combine(lower, "srv/www"), 33, 33);
        LibC.Chmod(Path.Combine(lower, "srv/www"), 0x1E8); // 0750
        Directory.CreateDirectory(Path.Combine(lower, "var"));
        Fs.Symlink(Path.Combine(lower, "var/www"), "/srv/www");

        await LayerCopier.CopyAsync(context, ["site"], "/var/www/html/", upper, [lower], null, null, 0x1A4);

        string written = Path.Combine(upper, "srv/www/html/index.html");
        Assert.Equal("<h1>Hello</h1>", File.ReadAllText(written));
        var st = LibC.Lstat(written);
        Assert.Equal((0x1A4u, 0u, 0u), (st.Permissions, st.Uid, st.Gid));
        // the parent that exists only below is copied up with its own mode and owner, not its contents
        var www = LibC.Lstat(Path.Combine(upper, "srv/www"));
        Assert.Equal((0x1E8u, 33u, 33u), (www.Permissions, www.Uid, www.Gid));
        Assert.False(Directory.Exists(Path.Combine(upper, "var")));
        Assert.Equal(["srv/www/html/index.html"],
            Directory.EnumerateFiles(upper, "*", SearchOption.AllDirectories).Select(p => Path.GetRelativePath(upper, p)));
    }

    [Fact]
    public async Task An_absolute_image_symlink_to_etc_never_reaches_the_hosts_etc()
    {
        using var t = new TempRoot();
        string context = t.Dir("ctx"), upper = t.Dir("upper"), lower = t.Dir("lower");
        Fs.Write(Path.Combine(context, "evil"), "x");
        Fs.Symlink(Path.Combine(lower, "etc2"), "/etc");
        await LayerCopier.CopyAsync(context, ["evil"], "/etc2/kiln-copier-test", upper, [lower], null, null, null);
        Assert.True(File.Exists(Path.Combine(upper, "etc/kiln-copier-test")));
        Assert.False(File.Exists("/etc/kiln-copier-test"));
    }

    [Fact]
    public async Task A_directory_source_copies_its_contents_recursively()
    {
        using var t = new TempRoot();
        string context = t.Dir("ctx"), upper = t.Dir("upper"), lower = t.Dir("lower");
        Fs.Write(Path.Combine(context, "app/bin/run"), "#!/bin/sh", mode: 0x1ED);
        Fs.Write(Path.Combine(context, "app/conf/app.conf"), "x=1", mode: 0x1A4);
        LibC.Chmod(Path.Combine(context, "app/conf"), 0x1E8);
        await LayerCopier.CopyAsync(context, ["app"], "/opt/app", upper, [lower], 1000, 1001, null);

        Assert.False(Directory.Exists(Path.Combine(upper, "opt/app/app")));
        var run = LibC.Lstat(Path.Combine(upper, "opt/app/bin/run"));
        Assert.Equal((0x1EDu, 1000u, 1001u), (run.Permissions, run.Uid, run.Gid));
        var conf = LibC.Lstat(Path.Combine(upper, "opt/app/conf"));
        Assert.Equal((0x1E8u, 1000u, 1001u), (conf.Permissions, conf.Uid, conf.Gid));
        var opt = LibC.Lstat(Path.Combine(upper, "opt"));
        Assert.Equal((0x1EDu, 0u, 0u), (opt.Permissions, opt.Uid, opt.Gid));
    }

    [Fact]
    public async Task Applies_mode_uid_and_gid_to_copied_files()
    {
        using var t = new TempRoot();
        string context = t.Dir("ctx"), upper = t.Dir("upper"), lower = t.Dir("lower");
        Fs.Write(Path.Combine(context, "tool"), "t", mode: 0x1A4, mtime: 1_111_111_111);
        await LayerCopier.CopyAsync(context, ["tool"], "/usr/local/bin/", upper, [lower], 5, 6, 0x9ED);
        var st = LibC.Lstat(Path.Combine(upper, "usr/local/bin/tool"));
        Assert.Equal((0x9EDu, 5u, 6u, 1_111_111_111L), (st.Permissions, st.Uid, st.Gid, st.MTimeSeconds));
    }

    [Fact]
    public async Task A_context_symlink_pointing_outside_is_copied_as_a_symlink()
    {
        using var t = new TempRoot();
        string context = t.Dir("ctx"), upper = t.Dir("upper"), lower = t.Dir("lower");
        Fs.Symlink(Path.Combine(context, "dir/secret"), "/etc/shadow");
        Fs.Symlink(Path.Combine(context, "dir/up"), "../../..");
        await LayerCopier.CopyAsync(context, ["dir"], "/data/", upper, [lower], null, null, null);
        Assert.Equal("/etc/shadow", new FileInfo(Path.Combine(upper, "data/secret")).LinkTarget);
        Assert.Equal("../../..", new FileInfo(Path.Combine(upper, "data/up")).LinkTarget);
    }

    [Theory]
    [InlineData("../outside/sentinel")]
    [InlineData("a/../../outside/sentinel")]
    [InlineData("link/sentinel")]
    public async Task A_source_that_climbs_out_of_the_context_or_through_a_context_symlink_is_refused(string source)
    {
        using var t = new TempRoot();
        string context = t.Dir("ctx"), upper = t.Dir("upper"), lower = t.Dir("lower");
        Fs.Write(Path.Combine(t.Path, "outside/sentinel"), "secret");
        Directory.CreateDirectory(Path.Combine(context, "a"));
        Fs.Symlink(Path.Combine(context, "link"), Path.Combine(t.Path, "outside"));
        await Assert.ThrowsAsync<LayerException>(() => LayerCopier.CopyAsync(context, [source], "/x", upper, [lower], null, null, null));
        Assert.Empty(Directory.GetFileSystemEntries(upper));
        Assert.Equal("secret", File.ReadAllText(Path.Combine(t.Path, "outside/sentinel")));
    }

    [Fact]
    public async Task A_file_goes_into_an_existing_image_directory()
    {
        using var t = new TempRoot();
        string context = t.Dir("ctx"), upper = t.Dir("upper"), lower = t.Dir("lower");
        Fs.Write(Path.Combine(context, "motd"), "hi");
        Directory.CreateDirectory(Path.Combine(lower, "etc"));
        await LayerCopier.CopyAsync(context, ["motd"], "/etc", upper, [lower], null, null, null);
        Assert.Equal("hi", File.ReadAllText(Path.Combine(upper, "etc/motd")));
        await LayerCopier.CopyAsync(context, ["motd"], "/etc/renamed", upper, [lower], null, null, null);
        Assert.Equal("hi", File.ReadAllText(Path.Combine(upper, "etc/renamed")));
    }

    [Fact]
    public async Task A_whiteout_in_upper_is_replaced_and_a_recreated_dir_hides_the_lower_one()
    {
        using var t = new TempRoot();
        string context = t.Dir("ctx"), upper = t.Dir("upper"), lower = t.Dir("lower");
        Fs.Write(Path.Combine(context, "conf/new.conf"), "new");
        Fs.Write(Path.Combine(context, "motd"), "new motd");
        Fs.Write(Path.Combine(lower, "etc/app/old.conf"), "old");
        Fs.Write(Path.Combine(lower, "etc/motd"), "old motd");
        Directory.CreateDirectory(Path.Combine(upper, "etc"));
        LibC.MknodWhiteout(Path.Combine(upper, "etc/app"));
        LibC.MknodWhiteout(Path.Combine(upper, "etc/motd"));

        await LayerCopier.CopyAsync(context, ["conf"], "/etc/app", upper, [lower], null, null, null);
        await LayerCopier.CopyAsync(context, ["motd"], "/etc/motd", upper, [lower], null, null, null);

        Assert.Equal("new motd", File.ReadAllText(Path.Combine(upper, "etc/motd")));
        Assert.Equal("y"u8.ToArray(), LibC.GetXattr(Path.Combine(upper, "etc/app"), "trusted.overlay.opaque"));
        Assert.Null(SafePath.Lookup([upper, lower], "/etc/app/old.conf"));
        Assert.NotNull(SafePath.Lookup([upper, lower], "/etc/app/new.conf"));
    }

    [Fact]
    public async Task Several_sources_need_a_destination_ending_with_a_slash()
    {
        using var t = new TempRoot();
        string context = t.Dir("ctx"), upper = t.Dir("upper"), lower = t.Dir("lower");
        Fs.Write(Path.Combine(context, "a"), "a");
        Fs.Write(Path.Combine(context, "b"), "b");
        await Assert.ThrowsAsync<LayerException>(() => LayerCopier.CopyAsync(context, ["a", "b"], "/dst", upper, [lower], null, null, null));
        await LayerCopier.CopyAsync(context, ["a", "b"], "/dst/", upper, [lower], null, null, null);
        Assert.Equal(["a", "b"], Directory.GetFiles(Path.Combine(upper, "dst")).Select(Path.GetFileName).Order());
    }

    [Fact]
    public async Task Copied_upper_dir_packs_into_the_expected_layer()
    {
        using var t = new TempRoot();
        string context = t.Dir("ctx"), upper = t.Dir("upper"), lower = t.Dir("lower");
        Fs.Write(Path.Combine(context, "site/index.html"), "Hello");
        Directory.CreateDirectory(Path.Combine(lower, "var/www"));
        await LayerCopier.CopyAsync(context, ["site"], "/var/www/html/", upper, [lower], null, null, 0x1A4);
        var (_, blob) = await LayerPackerTests.PackAsync(upper, Compression.Gzip);
        var names = LayerPackerTests.ReadTar(LayerPackerTests.Decompress(blob, Compression.Gzip)).Select(e => e.Name);
        Assert.Equal(["var/", "var/www/", "var/www/html/", "var/www/html/index.html"], names);
    }
}
