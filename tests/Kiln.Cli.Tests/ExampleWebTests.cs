using System.Text.Json;

namespace Kiln.Cli.Tests;

/// <summary>examples/web, built as the README says, and what the issue asks of it.</summary>
[Collection(ExampleWebCollection.Name)]
[Trait("Tier", "Slow")] // builds examples/web: a Debian bootstrap and packages from the mirror
public sealed class ExampleWebTests
{
    private readonly ExampleWebFixture _web;

    private readonly Xunit.Abstractions.ITestOutputHelper _output;

    public ExampleWebTests(ExampleWebFixture web, Xunit.Abstractions.ITestOutputHelper output)
    {
        _web = web;
        _output = output;
        Assert.True(web.Cold.ExitCode == 0, "cold build of examples/web failed:\n" + web.Cold.All);
    }

    private string Store => _web.Store.Path;

    /// <summary>The example's images in build order: each of web, web-systemd and server is an OS image with the site on top.</summary>
    private static readonly string[] s_images = ["base", "web-os", "web", "web-systemd-os", "web-systemd", "server-os", "server"];

    [Fact]
    public void The_example_builds_both_images_and_skopeo_reads_the_store()
    {
        foreach (var name in new[] { "base", "web" })
        {
            var r = KilnProcess.Tool("skopeo", "inspect", $"oci:{Store}:{name}");
            Assert.True(r.ExitCode == 0, r.All);
            using var doc = JsonDocument.Parse(r.Stdout);
            Assert.Equal(StoreReader.LayerDigests(Store, name), doc.RootElement.GetProperty("Layers").EnumerateArray().Select(l => l.GetString()!).ToList());
        }
        // web is base plus its own layers.
        var baseLayers = StoreReader.LayerDigests(Store, "base");
        Assert.Equal(baseLayers, StoreReader.LayerDigests(Store, "web").Take(baseLayers.Count).ToList());
    }

    [Fact]
    public void The_cold_build_ran_every_step_and_left_nothing_behind()
    {
        using var doc = JsonDocument.Parse(_web.Cold.Stdout);
        var images = doc.RootElement.GetProperty("images").EnumerateArray().ToList();
        Assert.Equal(s_images, images.Select(i => i.GetProperty("name").GetString()));
        Assert.All(images, i => Assert.Equal(0, i.GetProperty("stepsCached").GetInt32()));
        // bootstrap and ca-certificates; nginx-light; the site (sed, copy) on each of the three OS images.
        Assert.Equal([2, 1, 2, 2, 2, 2, 2], images.Select(i => i.GetProperty("stepsRun").GetInt32()));
        Leftovers.AssertNone(Store);
    }

    [Fact]
    public void Umoci_unpacks_the_same_tree_as_the_image()
    {
        using var bundle = new TempDir("kiln-umoci");
        var u = KilnProcess.Tool("umoci", "unpack", "--image", $"{Store}:web", bundle.Sub("b"));
        Assert.True(u.ExitCode == 0, u.All);
        var fromUmoci = TreeListing.Of(bundle.Sub("b/rootfs"));
        var fromKiln = TreeListing.OfImage(Store, "web");
        Assert.Contains(fromKiln, l => l.StartsWith("var/www/html/index.html\tf\t644\t0\t0\t", StringComparison.Ordinal));
        Assert.Contains(fromKiln, l => l.StartsWith("usr/sbin/nginx\tf\t755\t0\t0\t", StringComparison.Ordinal));
        TreeListing.AssertSame(fromKiln, fromUmoci);
    }

    [Fact]
    public void Package_steps_keep_apts_parse_of_the_lists_in_the_shared_cache_not_in_the_layers()
    {
        var shared = new FileInfo(Path.Combine(Store, "kiln", "cache", "apt", "archives", "kiln-srcpkgcache.bin"));
        Assert.True(shared.Exists && shared.Length > 1_000_000, $"no source cache at {shared.FullName}");
        foreach (var name in new[] { "base", "web", "web-systemd", "server" })
        {
            Assert.DoesNotContain(TreeListing.OfImage(Store, name), l => l.StartsWith("var/cache/apt/", StringComparison.Ordinal) && l.Split('\t')[0].EndsWith(".bin", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void A_second_build_with_no_change_runs_no_step_and_gives_the_same_digests()
    {
        var before = s_images.Select(n => StoreReader.ManifestDigest(Store, n)).ToList();
        using var ctx = new TempDir("kiln-web-ctx");
        ExampleWebFixture.CopyTree(ExampleWebFixture.ExamplePath, ctx.Path);
        var r = KilnProcess.Run(Store, "build", "--json", "--no-outputs", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
        using var doc = JsonDocument.Parse(r.Stdout);
        foreach (var image in doc.RootElement.GetProperty("images").EnumerateArray())
        {
            Assert.Equal(0, image.GetProperty("stepsRun").GetInt32());
        }
        var after = doc.RootElement.GetProperty("images").EnumerateArray().Select(i => i.GetProperty("digest").GetString()!).ToList();
        Assert.Equal(Digests(_web.Cold.Stdout), after);
        Assert.Equal(before.Count, after.Count);
    }

    [Fact]
    public void Changing_one_site_file_reruns_only_the_copy_step_and_reuses_base()
    {
        using var ctx = new TempDir("kiln-web-ctx");
        ExampleWebFixture.CopyTree(ExampleWebFixture.ExamplePath, ctx.Path);
        File.AppendAllText(Path.Combine(ctx.Path, "site", "index.html"), "<!-- changed -->\n");
        var r = KilnProcess.Run(Store, "build", "--json", "--no-outputs", "-t", "web", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
        using var doc = JsonDocument.Parse(r.Stdout);
        var images = doc.RootElement.GetProperty("images").EnumerateArray().ToDictionary(i => i.GetProperty("name").GetString()!);
        Assert.Equal(0, images["base"].GetProperty("stepsRun").GetInt32());
        Assert.Equal(Digests(_web.Cold.Stdout)[0], images["base"].GetProperty("digest").GetString());
        var ran = images["web"].GetProperty("steps").EnumerateArray()
            .Where(s => !s.GetProperty("cached").GetBoolean())
            .Select(s => s.GetProperty("description").GetString()!).ToList();
        Assert.Single(ran);
        Assert.StartsWith("copy", ran[0]);
        // The unchanged layers are the very same blobs.
        var cold = ColdLayers("web");
        var now = images["web"].GetProperty("steps").EnumerateArray().Where(s => s.TryGetProperty("layer", out _)).Select(s => s.GetProperty("layer").GetString()!).ToList();
        Assert.Equal(cold.Take(cold.Count - 1), now.Take(now.Count - 1));
        Assert.NotEqual(cold[^1], now[^1]);
    }

    [Fact]
    public void Refresh_reruns_the_bootstrap_and_package_steps_and_keeps_later_steps_when_packages_did_not_change()
    {
        // Up to web-systemd: server-os's kernel package would add 20 s and nothing the test does not already show.
        var r = KilnProcess.Run(Store, "build", "--refresh", "--json", "--no-outputs", "-t", "web-systemd", _web.Context.Path);
        Assert.True(r.ExitCode == 0, r.All);
        using var doc = JsonDocument.Parse(r.Stdout);
        var steps = doc.RootElement.GetProperty("images").EnumerateArray()
            .SelectMany(i => i.GetProperty("steps").EnumerateArray().Select(s => (Description: s.GetProperty("description").GetString()!, Cached: s.GetProperty("cached").GetBoolean())))
            .ToList();
        Assert.All(steps.Where(s => s.Description.StartsWith("bootstrap", StringComparison.Ordinal) || s.Description.StartsWith("packages", StringComparison.Ordinal)),
            s => Assert.False(s.Cached, s.Description));
        // The same mirror gives the same packages, so the run and copy steps built on them stay valid.
        Assert.All(steps.Where(s => s.Description.StartsWith("run", StringComparison.Ordinal) || s.Description.StartsWith("copy", StringComparison.Ordinal)),
            s => Assert.True(s.Cached, s.Description));
        var cold = DigestsByName(_web.Cold.Stdout);
        var now = DigestsByName(r.Stdout);
        Assert.Equal(["base", "web-os", "web-systemd-os", "web-systemd"], now.Keys);
        Assert.All(now, d => Assert.Equal(cold[d.Key], d.Value));
    }

    [Fact]
    public async Task Two_builds_whose_package_steps_run_at_once_both_succeed()
    {
        // Both share the store's apt cache (lists and downloads); their package steps take turns on it.
        static string Yaml(string package) => $"""
            images:
              base:
                bootstrap: debian/bookworm
                steps:
                  - packages: [ca-certificates]
              with-{package}:
                from: base
                steps:
                  - packages: [{package}]
            """;
        using var a = new TempDir("kiln-apt-a");
        using var b = new TempDir("kiln-apt-b");
        File.WriteAllText(a.Sub("kiln.yaml"), Yaml("less"));
        File.WriteAllText(b.Sub("kiln.yaml"), Yaml("bc"));
        var runs = await Task.WhenAll(
            Task.Run(() => KilnProcess.Run(Store, "build", "--json", a.Path)),
            Task.Run(() => KilnProcess.Run(Store, "build", "--json", b.Path)));
        Assert.All(runs, r => Assert.True(r.ExitCode == 0, r.All));
        Assert.Equal(3, StoreReader.LayerDigests(Store, "with-less").Count);
        Assert.Equal(3, StoreReader.LayerDigests(Store, "with-bc").Count);
        Leftovers.AssertNone(Store);
    }

    [Fact]
    public async Task Two_empty_stores_give_identical_digests_for_every_layer()
    {
        // The fixture started the second cold build (into an empty store) beside the first one.
        var r = await _web.Second;
        Assert.True(r.ExitCode == 0, r.All);
        // server too: its kernel layer (initrd included) comes out the same.
        Assert.Equal(Digests(_web.Cold.Stdout), Digests(r.Stdout));
        foreach (var (name, (a, manifest)) in _web.ColdImages)
        {
            var b = StoreReader.LayerDigests(_web.SecondStore.Path, name);
            Assert.Equal(a.Count, b.Count);
            // Every layer after the bootstrap layer must match; the bootstrap layer is checked too.
            Assert.Equal(a.Skip(1), b.Skip(1));
            Assert.Equal(a[0], b[0]);
            Assert.Equal(manifest, StoreReader.ManifestDigest(_web.SecondStore.Path, name));
        }
        Assert.Equal(3, _web.ColdImages.Count);
    }

    [Fact]
    public async Task The_web_image_boots_as_an_instance_and_serves_the_site_with_nginx()
    {
        using var store = Kiln.Build.Store.KilnStore.Open(Store);
        var image = await store.Content.ReadImageStateAsync(store.Names.TryGetTag("web")!.Digest);
        await using (var instance = await Kiln.Build.Testing.Boot.Instance.StartAsync(store, image, new Kiln.Build.Testing.Boot.InstanceOptions()))
        {
            await instance.WaitForPortsAsync([("tcp", 8080)], TimeSpan.FromSeconds(30));
            var page = await instance.HttpGetAsync(new Uri("http://127.0.0.1:8080/"), TimeSpan.FromSeconds(10));
            Assert.Equal(200, page.Status);
            Assert.Contains("Hello from Kiln", page.Body);
            Assert.StartsWith("nginx", page.Headers["Server"]);
        }
        Leftovers.AssertNone(Store);
    }

    [Fact]
    public async Task An_image_booted_with_systemd_reaches_its_nginx_unit_and_serves_the_page()
    {
        using var store = Kiln.Build.Store.KilnStore.Open(Store);
        var image = await store.Content.ReadImageStateAsync(store.Names.TryGetTag("web-systemd")!.Digest);
        await using (var instance = await Kiln.Build.Testing.Boot.Instance.StartAsync(store, image, new Kiln.Build.Testing.Boot.InstanceOptions { Systemd = true }))
        {
            await instance.WaitForPortsAsync([("tcp", 8080)], TimeSpan.FromSeconds(60));
            var units = await instance.ExecAsync("systemctl is-enabled nginx; systemctl is-active nginx; cat /proc/1/comm", TimeSpan.FromSeconds(20));
            Assert.Equal(["enabled", "active", "systemd"], units.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            var page = await instance.HttpGetAsync(new Uri("http://127.0.0.1:8080/"), TimeSpan.FromSeconds(10));
            Assert.Equal(200, page.Status);
            Assert.Contains("Hello from Kiln", page.Body);
        }
        Leftovers.AssertNone(Store);
        Assert.Empty(KilnProcess.Tool("pgrep", "-f", "systemd-nspawn -D " + Store).Stdout);
    }

    [Fact]
    public void The_spec_of_the_example_passes_in_both_phases_in_the_cold_build_and_kiln_test_reruns_it()
    {
        var phases = Tests(_web.Cold.Stdout, "web");
        var bake = phases.Single(p => p.GetProperty("phase").GetString() == "bake");
        Assert.True(bake.GetProperty("passed").GetBoolean(), _web.Cold.Stdout);
        Assert.Equal(["file /var/www/html/index.html", "package nginx-light", "user www-data", "command nginx -t"],
            bake.GetProperty("checks").EnumerateArray().Select(c => c.GetProperty("name").GetString()!));
        Assert.All(bake.GetProperty("checks").EnumerateArray(), c => Assert.True(c.GetProperty("passed").GetBoolean()));
        Assert.Empty(Tests(_web.Cold.Stdout, "base"));
        // The boot phase reads the page from nginx, in an instance of the image.
        var boot = phases.Single(p => p.GetProperty("phase").GetString() == "boot");
        Assert.True(boot.GetProperty("passed").GetBoolean(), _web.Cold.Stdout);
        Assert.Equal(["port tcp:8080", "http http://127.0.0.1:8080/"],
            boot.GetProperty("checks").EnumerateArray().Select(c => c.GetProperty("name").GetString()!));

        using var junit = new TempDir("kiln-junit");
        var again = KilnProcess.Run(Store, "test", "web", "--junit", junit.Sub("r.xml"), "-f", _web.Context.Path);
        Assert.True(again.ExitCode == 0, again.All);
        Assert.Equal(["web bake", "web boot"], System.Xml.Linq.XDocument.Load(junit.Sub("r.xml")).Root!.Elements("testsuite").Select(s => s.Attribute("name")!.Value));
        Leftovers.AssertNone(Store);
    }

    [Fact]
    public void The_examples_systemd_image_passes_its_service_and_http_checks()
    {
        var boot = Tests(_web.Cold.Stdout, "web-systemd").Single();
        Assert.Equal("boot", boot.GetProperty("phase").GetString());
        Assert.True(boot.GetProperty("passed").GetBoolean(), _web.Cold.Stdout);
        Assert.Equal(["port tcp:8080", "http http://127.0.0.1:8080/", "service nginx"],
            boot.GetProperty("checks").EnumerateArray().Select(c => c.GetProperty("name").GetString()!));
        _output.WriteLine($"systemd boot phase: {boot.GetProperty("seconds").GetDouble()} s");
        foreach (var p in Tests(_web.Cold.Stdout, "web"))
        {
            _output.WriteLine($"web {p.GetProperty("phase").GetString()} phase (process boot): {p.GetProperty("seconds").GetDouble()} s");
        }
        Leftovers.AssertNone(Store);
    }

    private static List<JsonElement> Tests(string buildJson, string image)
    {
        using var doc = JsonDocument.Parse(buildJson);
        return [.. doc.RootElement.GetProperty("images").EnumerateArray().First(i => i.GetProperty("name").GetString() == image)
            .GetProperty("tests").EnumerateArray().Select(p => p.Clone())];
    }

    private static List<string> Digests(string buildJson)
    {
        using var doc = JsonDocument.Parse(buildJson);
        return [.. doc.RootElement.GetProperty("images").EnumerateArray().Select(i => i.GetProperty("digest").GetString()!)];
    }

    private static Dictionary<string, string> DigestsByName(string buildJson)
    {
        using var doc = JsonDocument.Parse(buildJson);
        return doc.RootElement.GetProperty("images").EnumerateArray().ToDictionary(i => i.GetProperty("name").GetString()!, i => i.GetProperty("digest").GetString()!);
    }

    private List<string> ColdLayers(string image)
    {
        using var doc = JsonDocument.Parse(_web.Cold.Stdout);
        return [.. doc.RootElement.GetProperty("images").EnumerateArray().First(i => i.GetProperty("name").GetString() == image)
            .GetProperty("steps").EnumerateArray().Where(s => s.TryGetProperty("layer", out _)).Select(s => s.GetProperty("layer").GetString()!)];
    }
}
