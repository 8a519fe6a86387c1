using Kiln.Build.Execution;
using Kiln.Build.Native;
using Kiln.Build.Tests.Testing.Vm;

namespace Kiln.Build.Tests.Execution;

/// <summary>Uncompressed twins of cached .deb downloads: what they hold, when they are made and removed, and the
/// wrapper that gives them to dpkg.</summary>
public sealed class PackageTwinsTests : IDisposable
{
    private readonly ScratchDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private string Archives => Directory.CreateDirectory(Path.Combine(_dir.Path, "archives")).FullName;

    private string Twins => Path.Combine(_dir.Path, "plain");

    /// <summary>A package built by dpkg-deb with its members compressed as asked.</summary>
    private string Deb(string name, string compression = "xz", string content = "hello")
    {
        var root = Path.Combine(_dir.Path, $"pkg-{name}-{compression}");
        VmTestSupport.Sh($"rm -rf {root} && mkdir -p {root}/DEBIAN {root}/usr/share/{name} && printf '%s\\n' '{content}' > {root}/usr/share/{name}/file && " +
            $"printf 'Package: {name}\\nVersion: 1.0-1\\nArchitecture: all\\nMaintainer: kiln tests <tests@localhost>\\nDescription: a test package\\n' > {root}/DEBIAN/control");
        var deb = Path.Combine(Archives, $"{name}_1.0-1_all.deb");
        VmTestSupport.Sh($"dpkg-deb --root-owner-group -Z{compression} --build {root} {deb} >/dev/null");
        return deb;
    }

    private static string Sha(string option, string deb) => VmTestSupport.Sh($"dpkg-deb {option} {deb} | sha256sum");

    [Fact]
    public async Task A_twin_holds_the_packages_data_as_plain_tar_its_other_members_as_they_are_and_the_downloads_mtime()
    {
        var deb = Deb("alpha");
        var twin = Path.Combine(Directory.CreateDirectory(Twins).FullName, Path.GetFileName(deb));
        Assert.True(await PackageTwins.CreateAsync(deb, twin, CancellationToken.None));

        Assert.Equal("debian-binary\ncontrol.tar.xz\ndata.tar.xz\n", VmTestSupport.Sh($"ar t {deb}"));
        Assert.Equal("debian-binary\ncontrol.tar.xz\ndata.tar\n", VmTestSupport.Sh($"ar t {twin}"));
        foreach (var member in new[] { "debian-binary", "control.tar.xz" })
        {
            Assert.Equal(VmTestSupport.Sh($"ar p {deb} {member} | sha256sum"), VmTestSupport.Sh($"ar p {twin} {member} | sha256sum"));
        }
        Assert.Equal(Sha("--fsys-tarfile", deb), Sha("--fsys-tarfile", twin));
        Assert.Equal(Sha("--ctrl-tarfile", deb), Sha("--ctrl-tarfile", twin));
        Assert.Contains("Package: alpha", VmTestSupport.Sh($"dpkg-deb --field {twin}"));
        var d = LibC.Lstat(deb);
        var t = LibC.Lstat(twin);
        Assert.Equal((d.MTimeSeconds, d.MTimeNanoseconds), (t.MTimeSeconds, t.MTimeNanoseconds));
        Assert.True(PackageTwins.IsCurrent(deb, twin));
        Assert.Equal([Path.GetFileName(deb)], Directory.GetFiles(Twins).Select(Path.GetFileName));
    }

    [Theory]
    [InlineData("gzip")]
    [InlineData("none")]
    public async Task A_package_that_is_quick_to_unpack_gets_no_twin(string compression)
    {
        var deb = Deb("beta", compression);
        var twin = Path.Combine(Directory.CreateDirectory(Twins).FullName, Path.GetFileName(deb));
        Assert.False(await PackageTwins.CreateAsync(deb, twin, CancellationToken.None));
        Assert.Empty(Directory.GetFiles(Twins));
    }

    [Fact]
    public async Task A_file_that_is_not_a_whole_package_gets_no_twin()
    {
        var twins = Directory.CreateDirectory(Twins).FullName;
        var notAr = Path.Combine(Archives, "junk_1_all.deb");
        File.WriteAllText(notAr, "not an ar archive");
        var deb = Deb("alpha");
        var cut = Path.Combine(Archives, "cut_1_all.deb");
        File.WriteAllBytes(cut, File.ReadAllBytes(deb)[..^100]);
        Assert.False(await PackageTwins.CreateAsync(notAr, Path.Combine(twins, "junk_1_all.deb"), CancellationToken.None));
        Assert.False(await PackageTwins.CreateAsync(cut, Path.Combine(twins, "cut_1_all.deb"), CancellationToken.None));
        Assert.Empty(Directory.GetFiles(twins));
    }

    [Fact]
    public async Task Refresh_makes_twins_of_the_named_packages_remakes_outdated_ones_and_removes_orphans_and_old_temp_files()
    {
        var alpha = Deb("alpha");
        var gamma = Deb("gamma");
        Directory.CreateDirectory(Twins);
        var orphan = Path.Combine(Twins, "gone_1.0-1_all.deb");
        File.WriteAllText(orphan, "");
        var oldTemp = Path.Combine(Twins, ".tmp-1-old");
        File.WriteAllText(oldTemp, "");
        File.SetLastWriteTimeUtc(oldTemp, DateTime.UtcNow.AddHours(-2));
        var newTemp = Path.Combine(Twins, ".tmp-1-new");
        File.WriteAllText(newTemp, "");

        Assert.Equal(1, await PackageTwins.RefreshAsync(Archives, Twins, new HashSet<string> { "alpha" }, CancellationToken.None));
        Assert.Equal([".tmp-1-new", Path.GetFileName(alpha)], Directory.GetFiles(Twins).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal(0, await PackageTwins.RefreshAsync(Archives, Twins, new HashSet<string> { "alpha" }, CancellationToken.None));

        // A download replaced since (a new mtime) makes its twin outdated: the next refresh makes it again.
        Deb("alpha", content: "changed");
        var twin = Path.Combine(Twins, Path.GetFileName(alpha));
        Assert.False(PackageTwins.IsCurrent(alpha, twin));
        Assert.Equal(2, await PackageTwins.RefreshAsync(Archives, Twins, new HashSet<string> { "alpha", "gamma" }, CancellationToken.None));
        Assert.Equal(Sha("--fsys-tarfile", alpha), Sha("--fsys-tarfile", twin));
        Assert.True(PackageTwins.IsCurrent(gamma, Path.Combine(Twins, Path.GetFileName(gamma))));
    }

    [Fact]
    public void The_installed_packages_are_those_whose_file_list_the_step_wrote()
    {
        var info = Directory.CreateDirectory(Path.Combine(_dir.Path, "upper", "var", "lib", "dpkg", "info")).FullName;
        foreach (var f in new[] { "libelf1:amd64.list", "nginx-common.list", "nginx-common.postinst", "nginx-common.md5sums" })
        {
            File.WriteAllText(Path.Combine(info, f), "");
        }
        LibC.MknodWhiteout(Path.Combine(info, "removed.list"));
        Assert.Equal(["libelf1", "nginx-common"], PackageTwins.InstalledBy(Path.Combine(_dir.Path, "upper")).Order(StringComparer.Ordinal));
        Assert.Empty(PackageTwins.InstalledBy(Path.Combine(_dir.Path, "no-such-upper")));
        // A symlink in the upper dir's path to the file lists is not followed (it would lead onto the host).
        var linked = Directory.CreateDirectory(Path.Combine(_dir.Path, "linked", "var", "lib")).FullName;
        File.CreateSymbolicLink(Path.Combine(linked, "dpkg"), Path.Combine(_dir.Path, "upper", "var", "lib", "dpkg"));
        Assert.Empty(PackageTwins.InstalledBy(Path.Combine(_dir.Path, "linked")));
    }

    [Fact]
    public async Task The_wrapper_gives_dpkg_a_current_twin_and_passes_everything_else_on_as_it_came()
    {
        // The wrapper's own paths moved under the test's dir; a dpkg that prints its arguments one per line.
        var current = Deb("alpha");
        var outdated = Deb("gamma");
        Directory.CreateDirectory(Twins);
        await PackageTwins.CreateAsync(current, Path.Combine(Twins, Path.GetFileName(current)), CancellationToken.None);
        await PackageTwins.CreateAsync(outdated, Path.Combine(Twins, Path.GetFileName(outdated)), CancellationToken.None);
        var s = LibC.Lstat(outdated);
        LibC.SetTimesNoFollow(Path.Combine(Twins, Path.GetFileName(outdated)), s.MTimeSeconds + 1, s.MTimeNanoseconds);
        var bin = Directory.CreateDirectory(Path.Combine(_dir.Path, "bin")).FullName;
        File.WriteAllText(Path.Combine(bin, "dpkg"), "#!/bin/sh\nfor a do printf '%s\\n' \"$a\"; done\n");
        var wrapper = Path.Combine(bin, "wrapper");
        File.WriteAllText(wrapper, PackageTwins.Wrapper.Replace("/var/cache/apt/archives/", Archives + "/", StringComparison.Ordinal)
            .Replace(PackageTwins.InImage + "/", Twins + "/", StringComparison.Ordinal));
        VmTestSupport.Sh($"chmod +x {bin}/dpkg {wrapper}");
        var missing = Path.Combine(Archives, "delta_1.0-1_all.deb");

        var output = VmTestSupport.Sh($"PATH={bin}:/usr/bin:/bin {wrapper} --unpack {current} {outdated} {missing} 'an argument with  spaces' /elsewhere/{Path.GetFileName(current)}");

        Assert.Equal(
            ["--unpack", Path.Combine(Twins, Path.GetFileName(current)), outdated, missing, "an argument with  spaces", "/elsewhere/" + Path.GetFileName(current)],
            output.TrimEnd('\n').Split('\n'));
    }
}
