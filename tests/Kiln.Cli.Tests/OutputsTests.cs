namespace Kiln.Cli.Tests;

/// <summary><c>outputs:</c> in kiln.yaml and <c>kiln export</c> on tiny busybox images (archive formats; disks
/// have their own tests).</summary>
public sealed class OutputsTests : IDisposable
{
    private readonly TempDir _store = new("kiln-store");

    public void Dispose() => _store.Dispose();

    private static string Image(string extra, string name = "tiny", string steps = "") =>
        $"images:\n  {name}:\n    from: scratch\n    steps:\n{TinyContext.RootStep}{steps}{extra}";

    [Fact]
    public void A_passing_build_writes_its_outputs_to_out_and_leaves_current_ones_alone()
    {
        using var ctx = new TinyContext(Image("    outputs: [rootfs, {format: oci-archive, path: archives/tiny.tar}]\n"));
        Directory.CreateDirectory(Path.Combine(ctx.Path, "archives"));
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
        var rootfs = Path.Combine(ctx.Path, "out", "tiny.rootfs.tar");
        var archive = Path.Combine(ctx.Path, "archives", "tiny.tar");
        Assert.Contains("bin/busybox", KilnProcess.Tool("tar", "-tf", rootfs).Stdout);
        Assert.True(KilnProcess.Tool("skopeo", "inspect", "oci-archive:" + archive).ExitCode == 0);
        Assert.Contains($"wrote {rootfs}", r.Stdout);

        var written = File.GetLastWriteTimeUtc(rootfs);
        var again = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.True(again.ExitCode == 0, again.All);
        Assert.Contains($"{rootfs} is up to date", again.Stdout);
        Assert.Equal(written, File.GetLastWriteTimeUtc(rootfs));

        // A file changed by someone else is written again.
        File.WriteAllText(rootfs, "not a tar");
        var third = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.True(third.ExitCode == 0, third.All);
        Assert.Contains("bin/busybox", KilnProcess.Tool("tar", "-tf", rootfs).Stdout);
        Assert.Empty(Directory.GetFiles(Path.Combine(ctx.Path, "out"), ".*"));
    }

    [Fact]
    public void No_outputs_skips_them()
    {
        using var ctx = new TinyContext(Image("    outputs: [rootfs]\n"));
        var r = KilnProcess.Run(_store.Path, "build", "--no-outputs", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
        Assert.False(Directory.Exists(Path.Combine(ctx.Path, "out")));
    }

    [Fact]
    public void A_rejected_image_writes_no_outputs()
    {
        using var ctx = new TinyContext(Image(
            "    test: {file: {/etc/missing: {exists: true}}}\n    outputs: [rootfs]\n"));
        var r = KilnProcess.Run(_store.Path, "build", "--json", ctx.Path);
        Assert.Equal(1, r.ExitCode);
        Assert.False(File.Exists(Path.Combine(ctx.Path, "out", "tiny.rootfs.tar")));
        Assert.Contains("\"outputs\": []", r.Stdout);
    }

    [Fact]
    public void Export_writes_the_named_image_and_reports_it_as_json()
    {
        using var ctx = new TinyContext(Image(""));
        Assert.Equal(0, KilnProcess.Run(_store.Path, "build", ctx.Path).ExitCode);
        using var outDir = new TempDir("kiln-export");
        var target = outDir.Sub("t.tar");
        var r = KilnProcess.Run(_store.Path, "export", "tiny", "--format", "docker-archive", "-o", target, "--json");
        Assert.True(r.ExitCode == 0, r.All);
        Assert.Contains("\"format\": \"docker-archive\"", r.Stdout);
        Assert.True(KilnProcess.Tool("skopeo", "inspect", "docker-archive:" + target).ExitCode == 0);
        Assert.Equal(["t.tar"], Directory.GetFiles(outDir.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void A_disk_of_an_image_without_a_kernel_exits_2_naming_the_package_and_writes_nothing()
    {
        using var ctx = new TinyContext(Image(""));
        Assert.Equal(0, KilnProcess.Run(_store.Path, "build", ctx.Path).ExitCode);
        using var outDir = new TempDir("kiln-export");
        var r = KilnProcess.Run(_store.Path, "export", "tiny", "--format", "qcow2", "-o", outDir.Sub("tiny.qcow2"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("linux-image", r.Stderr);
        Assert.Empty(Directory.GetFileSystemEntries(outDir.Path));

        // The same as an output of a build: exit 2, and no file.
        ctx.Write("kiln.yaml", Image("    outputs: [raw]\n"));
        var build = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.Equal(2, build.ExitCode);
        Assert.Contains("linux-image", build.Stderr);
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(ctx.Path, "out")));
        Leftovers.AssertNone(_store.Path);
    }

    [Theory]
    [InlineData("--format", "iso", "unknown format 'iso'")]
    [InlineData("--size", "4G", "--format is required")]
    public void Export_usage_errors_exit_2(string option, string value, string message)
    {
        using var ctx = new TinyContext(Image(""));
        Assert.Equal(0, KilnProcess.Run(_store.Path, "build", ctx.Path).ExitCode);
        var r = KilnProcess.Run(_store.Path, "export", "tiny", option, value);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(message, r.Stderr);
    }

    [Fact]
    public void Export_of_an_unknown_image_or_size_on_an_archive_exits_2_and_writes_nothing()
    {
        using var ctx = new TinyContext(Image(""));
        Assert.Equal(0, KilnProcess.Run(_store.Path, "build", ctx.Path).ExitCode);
        using var outDir = new TempDir("kiln-export");
        var missing = KilnProcess.Run(_store.Path, "export", "nope", "--format", "rootfs", "-o", outDir.Sub("x.tar"));
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("no image named 'nope'", missing.Stderr);
        var sized = KilnProcess.Run(_store.Path, "export", "tiny", "--format", "rootfs", "--size", "1G", "-o", outDir.Sub("x.tar"));
        Assert.Equal(2, sized.ExitCode);
        Assert.Contains("--size applies to disk formats", sized.Stderr);
        var noFolder = KilnProcess.Run(_store.Path, "export", "tiny", "--format", "rootfs", "-o", outDir.Sub("no/such/x.tar"));
        Assert.Equal(2, noFolder.ExitCode);
        Assert.Contains("does not exist", noFolder.Stderr);
        Assert.Empty(Directory.GetFileSystemEntries(outDir.Path));
    }
}
