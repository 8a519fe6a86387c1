using Kiln.Build.Native;

namespace Kiln.Cli.Tests;

/// <summary>Package steps of examples/web leave uncompressed twins of what they installed in the store's apt cache;
/// later package steps install from them, to the same layer.</summary>
[Collection(ExampleWebCollection.Name)]
[Trait("Tier", "Slow")] // builds examples/web: a Debian bootstrap and packages from the mirror
public sealed class PackageTwinsTests
{
    private readonly ExampleWebFixture _web;

    public PackageTwinsTests(ExampleWebFixture web)
    {
        _web = web;
        Assert.True(web.Cold.ExitCode == 0, "cold build of examples/web failed:\n" + web.Cold.All);
    }

    private string Store => _web.Store.Path;

    private string Archives => Path.Combine(Store, "kiln", "cache", "apt", "archives");

    private string Twins => Path.Combine(Store, "kiln", "cache", "apt", "plain");

    /// <summary>examples/web's base, and an image that installs nginx-light on it again (a new env value makes the
    /// package step run instead of coming from the cache).</summary>
    private static string Yaml(string run) => $$"""
        images:
          base:
            bootstrap: debian/bookworm
            steps:
              - packages: [ca-certificates]
          again:
            from: base
            steps:
              - env: {TWINS_RUN: {{run}}}
              - packages: [nginx-light]
        """;

    private KilnProcess.Result Build(string run)
    {
        using var ctx = new TempDir("kiln-twins");
        File.WriteAllText(ctx.Sub("kiln.yaml"), Yaml(run));
        var r = KilnProcess.Run(Store, "build", "--json", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
        return r;
    }

    [Fact]
    public void Package_steps_leave_twins_of_what_they_installed_and_a_step_that_installs_from_them_makes_the_same_layer()
    {
        var names = Directory.GetFiles(Twins).Select(f => Path.GetFileName(f)).ToList();
        Assert.Contains(names, n => n.StartsWith("nginx-common_", StringComparison.Ordinal));
        Assert.Contains(names, n => n.StartsWith("ca-certificates_", StringComparison.Ordinal));
        // The bootstrap's packages were not installed by a package step: no twins for them.
        Assert.DoesNotContain(names, n => n.StartsWith("bash_", StringComparison.Ordinal));
        foreach (var name in names)
        {
            Assert.True(File.Exists(Path.Combine(Archives, name)), $"twin {name} has no download");
        }

        Build("same-layer");
        Assert.Equal(StoreReader.LayerDigests(Store, "web")[2], StoreReader.LayerDigests(Store, "again")[2]);
        Leftovers.AssertNone(Store);
    }

    [Fact]
    public void Dpkg_installs_a_twin_only_while_it_carries_the_mtime_of_its_download()
    {
        // A twin of nginx-light with one file more than the download shows which of the two dpkg installed.
        var deb = Directory.GetFiles(Archives, "nginx-light_*.deb").Single();
        var twin = Path.Combine(Twins, Path.GetFileName(deb));
        Assert.True(File.Exists(twin), "no twin of " + deb);
        using var work = new TempDir("kiln-twin-marker");
        File.Copy(twin, work.Sub("saved.deb"));
        const string Marker = "usr/share/doc/nginx-light/kiln-twin-marker";
        try
        {
            Run("dpkg-deb", "-R", twin, work.Sub("tree"));
            File.WriteAllText(work.Sub("tree/" + Marker), "from the twin\n");
            Run("dpkg-deb", "--root-owner-group", "-Znone", "--build", work.Sub("tree"), twin);
            var download = LibC.Lstat(deb);
            LibC.SetTimesNoFollow(twin, download.MTimeSeconds, download.MTimeNanoseconds);

            Build("marked-twin");
            Assert.Contains(StoreReader.LayerEntries(Store, StoreReader.LayerDigests(Store, "again")[2]), e => e.TrimStart('.', '/') == Marker);

            // One second off: the download is installed, and the step's refresh makes the twin again from it.
            LibC.SetTimesNoFollow(twin, download.MTimeSeconds + 1, download.MTimeNanoseconds);
            Build("outdated-twin");
            Assert.DoesNotContain(StoreReader.LayerEntries(Store, StoreReader.LayerDigests(Store, "again")[2]), e => e.TrimStart('.', '/') == Marker);
            Assert.Equal(StoreReader.LayerDigests(Store, "web")[2], StoreReader.LayerDigests(Store, "again")[2]);
            Assert.DoesNotContain(Marker, Run("dpkg-deb", "-c", twin));
        }
        finally
        {
            File.Copy(work.Sub("saved.deb"), twin, overwrite: true);
            var download = LibC.Lstat(deb);
            LibC.SetTimesNoFollow(twin, download.MTimeSeconds, download.MTimeNanoseconds);
        }
    }

    [Fact]
    public void A_twin_that_cannot_be_made_is_a_warning_and_the_step_succeeds()
    {
        var deb = Directory.GetFiles(Archives, "nginx-common_*.deb").Single();
        var twin = Path.Combine(Twins, Path.GetFileName(deb));
        using var work = new TempDir("kiln-twin-saved");
        File.Copy(twin, work.Sub("saved.deb"));
        File.Delete(twin);
        Run("chattr", "+i", Twins);
        try
        {
            var r = Build("immutable-twins");
            Assert.Contains("warning: could not make uncompressed copies of the cached packages", r.Stderr);
            Assert.Equal(StoreReader.LayerDigests(Store, "web")[2], StoreReader.LayerDigests(Store, "again")[2]);
        }
        finally
        {
            Run("chattr", "-i", Twins);
            File.Copy(work.Sub("saved.deb"), twin, overwrite: true);
            var download = LibC.Lstat(deb);
            LibC.SetTimesNoFollow(twin, download.MTimeSeconds, download.MTimeNanoseconds);
        }
        Assert.Empty(Directory.GetFiles(Twins, ".tmp-*"));
    }

    private static string Run(string tool, params string[] args)
    {
        var r = KilnProcess.Tool(tool, args);
        Assert.True(r.ExitCode == 0, r.All);
        return r.Stdout;
    }
}
