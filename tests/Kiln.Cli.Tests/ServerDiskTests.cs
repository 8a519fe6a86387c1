using System.Text.Json;

namespace Kiln.Cli.Tests;

/// <summary>examples/web's `server`: the qcow2 its `outputs:` write in the README's build, its Vagrant box, the VM
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
        Assert.Equal([("server", "qcow2")], outputs);

        using var tmp = new TempDir("kiln-disk");
        var raw = DiskFiles.ToRaw(qcow2, tmp, "server.raw");
        DiskFiles.AssertRootFsClean(raw);
        var expected = ImageTree(ColdDigest("server"));
        TreeListing.AssertSame(expected, TreeListing.OfDiskRoot(raw));
    }

    [Fact]
    public void Kiln_export_writes_a_vagrant_box_in_the_libvirt_layout()
    {
        Assert.True(_web.BoxExport.ExitCode == 0, _web.BoxExport.All);
        var box = _web.ServerBox;
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
    public void A_site_change_runs_only_the_copy_step_patches_the_qcow2_in_place_and_the_disk_boots()
    {
        using var ctx = new TempDir("kiln-server-ctx");
        ExampleWebFixture.CopyTree(ExampleWebFixture.ExamplePath, ctx.Path);
        Directory.Delete(Path.Combine(ctx.Path, "out"), recursive: true);
        var index = Path.Combine(ctx.Path, "site", "index.html");
        var spec = Path.Combine(ctx.Path, "tests", "server.yaml");
        var original = File.ReadAllText(index);
        var originalSpec = File.ReadAllText(spec);
        // The boot phase under systemd must see the new line: the served page changed, not just the file.
        void ChangeSite(string line)
        {
            File.WriteAllText(index, original.Replace("</body>", $"<p>{line}</p>\n</body>", StringComparison.Ordinal));
            File.WriteAllText(spec, originalSpec.Replace("body: [Hello from Kiln]", $"body: [Hello from Kiln, {line}]", StringComparison.Ordinal));
        }

        // The first change in this context: its qcow2 has no earlier file to patch.
        ChangeSite("first change");
        var first = KilnProcess.Run(Store, "build", "--json", "-t", "server", ctx.Path);
        Assert.True(first.ExitCode == 0, first.All);
        Assert.False(Qcow2Output(first.Stdout).GetProperty("patched").GetBoolean(), first.Stdout);

        ChangeSite("second change");
        var build = KilnProcess.Run(Store, "build", "--json", "-t", "server", ctx.Path);
        Assert.True(build.ExitCode == 0, build.All);
        using var doc = JsonDocument.Parse(build.Stdout);
        var images = doc.RootElement.GetProperty("images").EnumerateArray().ToList();
        Assert.Equal(["base", "web-os", "web-systemd-os", "server-os", "server"], images.Select(i => i.GetProperty("name").GetString()));
        var ran = images.SelectMany(i => i.GetProperty("steps").EnumerateArray()
            .Where(st => !st.GetProperty("cached").GetBoolean())
            .Select(st => $"{i.GetProperty("name").GetString()}: {st.GetProperty("description").GetString()}")).ToList();
        Assert.Equal(["server: copy site/ -> /var/www/html/"], ran);
        var server = images.Single(i => i.GetProperty("name").GetString() == "server");
        var boot = server.GetProperty("tests").EnumerateArray().Single(t => t.GetProperty("phase").GetString() == "boot");
        Assert.True(boot.GetProperty("passed").GetBoolean() && !boot.GetProperty("cached").GetBoolean(), build.Stdout);
        var qcow2Output = Qcow2Output(build.Stdout);
        Assert.True(qcow2Output.GetProperty("incremental").GetBoolean(), build.Stdout);
        Assert.True(qcow2Output.GetProperty("patched").GetBoolean(), build.Stdout);
        Assert.InRange(qcow2Output.GetProperty("bytesWritten").GetInt64(), 1, 16L << 20);
        var digest = server.GetProperty("digest").GetString()!;
        Assert.NotEqual(ColdDigest("server"), digest);

        // The patched qcow2 holds exactly the kept disk, and that disk holds exactly the image, as a full export does.
        var qcow2 = Path.Combine(ctx.Path, "out", "server.qcow2");
        var compare = KilnProcess.Tool("qemu-img", "compare", "-f", "qcow2", "-F", "raw", qcow2, KeptDisk("server"));
        Assert.True(compare.ExitCode == 0, compare.All);
        Assert.Equal(0, KilnProcess.Tool("qemu-img", "check", qcow2).ExitCode);
        using var tmp = new TempDir("kiln-disk");
        var full = KilnProcess.Run(Store, "export", "server", "--format", "raw", "--full", "-o", tmp.Sub("full.raw"), "--json");
        Assert.True(full.ExitCode == 0, full.All);
        Assert.Contains("\"incremental\": false", full.Stdout);
        var incremental = DiskFiles.ToRaw(qcow2, tmp, "incremental.raw");
        DiskFiles.AssertRootFsClean(incremental);
        DiskFiles.AssertRootFsClean(tmp.Sub("full.raw"));
        var fromFull = TreeListing.OfDiskRoot(tmp.Sub("full.raw"));
        TreeListing.AssertSame(fromFull, TreeListing.OfDiskRoot(incremental));
        TreeListing.AssertSame(ImageTree(digest), fromFull);
        Assert.Contains(fromFull, l => l.StartsWith("var/www/html/index.html\tf\t644\t0\t0\t", StringComparison.Ordinal));

        // Boot the patched disk with one check added that must fail inside the guest: only that one fails.
        File.WriteAllText(spec, File.ReadAllText(spec).Replace("command:\n", "command:\n  test -e /etc/kiln-not-there: {exit-status: 0}\n", StringComparison.Ordinal));
        var vm = KilnProcess.Run(Store, "test", "server", "-f", ctx.Path, "--phase", "vm", "--disk", qcow2, "--json");
        Assert.True(vm.ExitCode == 1, vm.All);
        using var result = JsonDocument.Parse(vm.Stdout);
        var checks = result.RootElement.GetProperty("tests").EnumerateArray().Single().GetProperty("checks").EnumerateArray()
            .ToDictionary(c => c.GetProperty("name").GetString()!, c => c.GetProperty("passed").GetBoolean());
        Assert.Equal(["command test -e /etc/kiln-not-there"], checks.Where(c => !c.Value).Select(c => c.Key));
        Assert.True(checks["http http://127.0.0.1:8080/"], vm.Stdout);
        Assert.Contains("FAILED server (vm) command test -e /etc/kiln-not-there", vm.Stderr);
        Assert.False(DiskFiles.AnyQemuRunning(Store), "a qemu process outlived kiln test");
    }

    private static JsonElement Qcow2Output(string buildJson)
    {
        using var doc = JsonDocument.Parse(buildJson);
        return doc.RootElement.GetProperty("outputs").EnumerateArray().Single(o => o.GetProperty("format").GetString() == "qcow2").Clone();
    }

    /// <summary>The raw file of the store's kept disk of <paramref name="image"/> (kiln/disks/, one record per image).</summary>
    private string KeptDisk(string image)
    {
        foreach (var record in Directory.EnumerateFiles(Path.Combine(Store, "kiln", "disks"), "*.json"))
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(record));
            if (doc.RootElement.GetProperty("image").GetString() == image)
            {
                return Path.Combine(Store, "kiln", "disks", doc.RootElement.GetProperty("rawFile").GetString()!);
            }
        }
        throw new FileNotFoundException($"no kept disk of {image} in {Store}");
    }

    private IReadOnlyList<string> ImageTree(string manifestDigest) => TreeListing.OfManifest(Store, manifestDigest);
}
