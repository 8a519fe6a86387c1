using System.Text.Json;

namespace Kiln.Cli.Tests;

/// <summary>examples/web's `server`: the qcow2 and Vagrant box its `outputs:` write in the README's build, the VM
/// boot check under qemu, and an incremental disk after an application change.</summary>
[Collection(ExampleWebCollection.Name)]
[Trait("Tier", "Slow")] // builds examples/web: a Debian bootstrap and packages from the mirror
public sealed class ServerDiskTests
{
    private readonly ExampleWebFixture _web;

    public ServerDiskTests(ExampleWebFixture web)
    {
        _web = web;
        Assert.True(web.Cold.ExitCode == 0, "cold build of examples/web failed:\n" + web.Cold.All);
    }

    private string Store => _web.Store.Path;

    private static string OutDir => Path.Combine(ExampleWebFixture.ExamplePath, "out");

    private string ColdDigest(string image)
    {
        using var doc = JsonDocument.Parse(_web.Cold.Stdout);
        return doc.RootElement.GetProperty("images").EnumerateArray().First(i => i.GetProperty("name").GetString() == image).GetProperty("digest").GetString()!;
    }

    [Fact]
    public void The_readme_build_writes_a_server_qcow2_with_a_clean_root_holding_exactly_the_image()
    {
        var qcow2 = Path.Combine(OutDir, "server.qcow2");
        var check = KilnProcess.Tool("qemu-img", "check", qcow2);
        Assert.True(check.ExitCode == 0, check.All);
        using var doc = JsonDocument.Parse(_web.Cold.Stdout);
        var outputs = doc.RootElement.GetProperty("outputs").EnumerateArray().Select(o => (o.GetProperty("image").GetString(), o.GetProperty("format").GetString())).ToList();
        Assert.Equal([("server", "qcow2"), ("server", "vagrant")], outputs);

        using var tmp = new TempDir("kiln-disk");
        var raw = DiskFiles.ToRaw(qcow2, tmp, "server.raw");
        DiskFiles.AssertRootFsClean(raw);
        var expected = ImageTree(ColdDigest("server"));
        TreeListing.AssertSame(expected, TreeListing.OfDiskRoot(raw));
    }

    [Fact]
    public void The_readme_build_writes_a_vagrant_box_in_the_libvirt_layout()
    {
        var box = Path.Combine(OutDir, "server.box");
        var list = KilnProcess.Tool("tar", "-tf", box);
        Assert.True(list.ExitCode == 0, list.All);
        var names = list.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(n => n.TrimStart('.', '/')).ToHashSet();
        Assert.Superset(new HashSet<string> { "box.img", "metadata.json", "Vagrantfile" }, names);
        using var tmp = new TempDir("kiln-box");
        Assert.Equal(0, KilnProcess.Tool("tar", "-xf", box, "-C", tmp.Path).ExitCode);
        using var metadata = JsonDocument.Parse(File.ReadAllText(tmp.Sub("metadata.json")));
        Assert.Equal("libvirt", metadata.RootElement.GetProperty("provider").GetString());
        Assert.Equal("qcow2", metadata.RootElement.GetProperty("format").GetString());
        Assert.Contains("file format: qcow2", KilnProcess.Tool("qemu-img", "info", tmp.Sub("box.img")).Stdout);
    }

    [Fact]
    public void The_server_qcow2_boots_under_qemu_serves_the_page_and_passes_its_checks()
    {
        var r = KilnProcess.Run(Store, "test", "server", "-f", ExampleWebFixture.ExamplePath, "--phase", "vm", "--disk", Path.Combine(OutDir, "server.qcow2"), "--json");
        Assert.True(r.ExitCode == 0, r.All);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.True(doc.RootElement.GetProperty("passed").GetBoolean());
        var checks = doc.RootElement.GetProperty("tests").EnumerateArray().Single().GetProperty("checks").EnumerateArray()
            .Select(c => (Name: c.GetProperty("name").GetString()!, Passed: c.GetProperty("passed").GetBoolean())).ToList();
        Assert.Contains(checks, c => c.Name.StartsWith("http", StringComparison.Ordinal) && c.Passed);
        Assert.Contains(checks, c => c.Name.StartsWith("command", StringComparison.Ordinal) && c.Passed);
        Assert.False(DiskFiles.AnyQemuRunning(Store), "a qemu process outlived kiln test");
        Leftovers.AssertNone(Store);
    }

    [Fact]
    public void An_app_change_gives_an_incremental_disk_identical_to_a_full_export_and_it_boots()
    {
        using var ctx = new TempDir("kiln-server-ctx");
        ExampleWebFixture.CopyTree(ExampleWebFixture.ExamplePath, ctx.Path);
        Directory.Delete(Path.Combine(ctx.Path, "out"), recursive: true);
        File.AppendAllText(Path.Combine(ctx.Path, "site", "index.html"), "<p>changed for the incremental disk</p>\n");
        // The qcow2 alone: the Vagrant box (its own package step and disk) is the README build's, checked on that one.
        var yaml = Path.Combine(ctx.Path, "kiln.yaml");
        File.WriteAllText(yaml, File.ReadAllText(yaml).Replace("outputs: [qcow2, vagrant]", "outputs: [qcow2]", StringComparison.Ordinal));
        var build = KilnProcess.Run(Store, "build", "--json", "-t", "server", ctx.Path);
        Assert.True(build.ExitCode == 0, build.All);
        using var doc = JsonDocument.Parse(build.Stdout);
        var qcow2Output = Assert.Single(doc.RootElement.GetProperty("outputs").EnumerateArray());
        Assert.Equal("qcow2", qcow2Output.GetProperty("format").GetString());
        Assert.True(qcow2Output.GetProperty("incremental").GetBoolean(), build.Stdout);
        var digest = doc.RootElement.GetProperty("images").EnumerateArray().Single(i => i.GetProperty("name").GetString() == "server").GetProperty("digest").GetString()!;
        Assert.NotEqual(ColdDigest("server"), digest);

        using var tmp = new TempDir("kiln-disk");
        var full = KilnProcess.Run(Store, "export", "server", "--format", "raw", "--full", "-o", tmp.Sub("full.raw"), "--json");
        Assert.True(full.ExitCode == 0, full.All);
        Assert.Contains("\"incremental\": false", full.Stdout);
        var incremental = DiskFiles.ToRaw(Path.Combine(ctx.Path, "out", "server.qcow2"), tmp, "incremental.raw");
        DiskFiles.AssertRootFsClean(incremental);
        DiskFiles.AssertRootFsClean(tmp.Sub("full.raw"));
        var fromFull = TreeListing.OfDiskRoot(tmp.Sub("full.raw"));
        TreeListing.AssertSame(fromFull, TreeListing.OfDiskRoot(incremental));
        TreeListing.AssertSame(ImageTree(digest), fromFull);
        Assert.Contains(fromFull, l => l.StartsWith("var/www/html/index.html\tf\t644\t0\t0\t", StringComparison.Ordinal));

        // Boot the incremental disk with one check added that must fail inside the guest: only that one fails.
        var spec = Path.Combine(ctx.Path, "tests", "server.yaml");
        File.WriteAllText(spec, File.ReadAllText(spec).Replace("command:\n", "command:\n  test -e /etc/kiln-not-there: {exit-status: 0}\n", StringComparison.Ordinal));
        var boot = KilnProcess.Run(Store, "test", "server", "-f", ctx.Path, "--phase", "vm", "--disk", Path.Combine(ctx.Path, "out", "server.qcow2"), "--json");
        Assert.True(boot.ExitCode == 1, boot.All);
        using var result = JsonDocument.Parse(boot.Stdout);
        var checks = result.RootElement.GetProperty("tests").EnumerateArray().Single().GetProperty("checks").EnumerateArray()
            .ToDictionary(c => c.GetProperty("name").GetString()!, c => c.GetProperty("passed").GetBoolean());
        Assert.Equal(["command test -e /etc/kiln-not-there"], checks.Where(c => !c.Value).Select(c => c.Key));
        Assert.True(checks["http http://127.0.0.1:8080/"], boot.Stdout);
        Assert.Contains("FAILED server (vm) command test -e /etc/kiln-not-there", boot.Stderr);
        Assert.False(DiskFiles.AnyQemuRunning(Store), "a qemu process outlived kiln test");
    }

    private IReadOnlyList<string> ImageTree(string manifestDigest) => TreeListing.OfManifest(Store, manifestDigest);
}
