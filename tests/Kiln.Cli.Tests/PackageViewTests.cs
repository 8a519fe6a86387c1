using System.Text.Json;

namespace Kiln.Cli.Tests;

/// <summary>Package steps give apt a view of the lists (the image's packages and what the request could pull in);
/// with Debian's real lists it installs what the full lists install.</summary>
[Collection(ExampleWebCollection.Name)]
[Trait("Tier", "Slow")] // builds examples/web: a Debian bootstrap and packages from the mirror
public sealed class PackageViewTests
{
    private readonly ExampleWebFixture _web;

    public PackageViewTests(ExampleWebFixture web)
    {
        _web = web;
        Assert.True(web.Cold.ExitCode == 0, "cold build of examples/web failed:\n" + web.Cold.All);
    }

    private string Store => _web.Store.Path;

    /// <summary>examples/web's base and an image that installs <paramref name="packages"/> on it (a new env value
    /// makes the package step run instead of coming from the cache).</summary>
    private KilnProcess.Result Build(string run, string packages, params string[] options) => BuildWithSteps(run, "", packages, options);

    /// <param name="steps">Steps (YAML lines) between the env step and the package step.</param>
    private KilnProcess.Result BuildWithSteps(string run, string steps, string packages, params string[] options)
    {
        using var ctx = new TempDir("kiln-view");
        File.WriteAllText(ctx.Sub("kiln.yaml"), $$"""
            images:
              base:
                bootstrap: debian/bookworm
                steps:
                  - packages: [ca-certificates]
              again:
                from: base
                steps:
                  - env: {VIEW_RUN: {{run}}}
            {{steps}}
                  - packages: [{{packages}}]
            """);
        var r = KilnProcess.Run(Store, ["build", "--verbose", "--trace", ctx.Sub("trace.json"), .. options, ctx.Path]);
        Assert.True(r.ExitCode == 0, r.All);
        Phases = PhaseNames(ctx.Sub("trace.json"));
        return r;
    }

    private List<string> Phases { get; set; } = [];

    private static List<string> PhaseNames(string trace)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(trace));
        return [.. doc.RootElement.GetProperty("traceEvents").EnumerateArray()
            .Where(e => e.GetProperty("ph").GetString() == "X" && e.GetProperty("cat").GetString() == "phase")
            .Select(e => e.GetProperty("name").GetString()!)];
    }

    [Fact]
    public void A_package_step_installs_from_its_view_the_layer_that_the_full_lists_give()
    {
        var viewed = Build("view", "nginx-light");
        Assert.Contains("package view", Phases);
        // Installed from the view: apt did not fall back to updating the lists and reading them all.
        Assert.Contains("Setting up nginx-light", viewed.All);
        Assert.DoesNotContain("Hit:", viewed.All);
        Assert.DoesNotContain("Get:", viewed.All);
        var fromView = StoreReader.LayerDigests(Store, "again")[2];
        Assert.True(File.Exists(Path.Combine(Store, "kiln", "cache", "apt", "lists.index")), "no index of the lists");

        Build("full", "nginx-light", "--full-package-lists");
        Assert.DoesNotContain("package view", Phases);
        Assert.Equal(fromView, StoreReader.LayerDigests(Store, "again")[2]);
        Assert.Equal(StoreReader.LayerDigests(Store, "web")[2], fromView);
        Leftovers.AssertNone(Store);
    }

    [Fact]
    public void A_damaged_index_of_the_lists_is_made_again_and_the_step_installs_from_its_view()
    {
        var index = Path.Combine(Store, "kiln", "cache", "apt", "lists.index");
        Build("before-damage", "nginx-light");
        var length = new FileInfo(index).Length;
        File.WriteAllBytes(index, new byte[100]);

        var r = Build("damaged", "nginx-light");
        Assert.Contains("package view", Phases);
        Assert.DoesNotContain("apt reads the full package lists", r.All);
        Assert.DoesNotContain("Hit:", r.All);
        Assert.Equal(length, new FileInfo(index).Length);
        Assert.Equal(StoreReader.LayerDigests(Store, "web")[2], StoreReader.LayerDigests(Store, "again")[2]);
    }

    [Fact]
    public void Debconfs_preconfigure_hook_is_left_out_where_it_has_nothing_to_do_and_the_layer_is_the_same()
    {
        var without = Build("no-preconfigure", "nginx-light");
        Assert.DoesNotContain("delaying package configuration", without.All);
        var layer = StoreReader.LayerDigests(Store, "again")[2];

        // A second Pre-Install-Pkgs hook keeps debconf's: it runs, says why it does nothing, and the layer is the same.
        var with = BuildWithSteps("preconfigure", """
                  - run: echo 'DPkg::Pre-Install-Pkgs {"true";};' > /etc/apt/apt.conf.d/99kiln-test
            """, "nginx-light");
        Assert.Contains("delaying package configuration, since apt-utils is not installed", with.All);
        Assert.Equal(layer, StoreReader.LayerDigests(Store, "again")[3]);
    }
}
