using Kiln.Build.Definition;
using Kiln.Build.Minimize;

namespace Kiln.Build.Tests.Minimize;

public sealed class ProfilesTests
{
    [Fact]
    public void Every_profile_name_the_definition_accepts_has_a_path_set()
    {
        Assert.Equal(DefinitionSyntax.MinimizeProfiles.Order(), Profiles.All.Select(p => p.Name).Order());
    }

    [Theory]
    [InlineData("docs", "/usr/share/doc/nginx/changelog.Debian.gz", true)]
    [InlineData("docs", "/usr/share/doc/nginx/copyright", false)]
    [InlineData("docs", "/usr/share/info/dir", true)]
    [InlineData("man", "/usr/share/man/man1/ls.1.gz", true)]
    [InlineData("man", "/usr/share/manifest", false)]
    [InlineData("locales", "/usr/share/locale/de/LC_MESSAGES/coreutils.mo", true)]
    [InlineData("locales", "/usr/share/locale/locale.alias", false)]
    [InlineData("locales", "/usr/lib/locale/C.utf8/LC_CTYPE", false)]
    [InlineData("apt-lists", "/var/lib/apt/lists/deb.example_dists_bookworm_InRelease", true)]
    [InlineData("apt-lists", "/var/lib/apt/lists/lock", false)]
    [InlineData("apt-lists", "/var/cache/apt/pkgcache.bin", true)]
    [InlineData("caches", "/var/cache/man/index.db", true)]
    [InlineData("caches", "/var/cache/debconf/config.dat", false)]
    [InlineData("caches", "/tmp/x", true)]
    [InlineData("logs", "/var/log/dpkg.log", true)]
    [InlineData("logs", "/var/lib/dpkg/status", false)]
    public void A_profile_removes_its_paths_and_spares_its_exceptions(string profile, string path, bool removed)
    {
        Assert.Equal(removed, Profiles.Removes([Profiles.Get(profile)], path));
    }

    [Fact]
    public void Only_directories_under_a_pruned_tree_go_when_empty()
    {
        var docs = Profiles.Get("docs");
        Assert.True(Profiles.Prunes([docs], "/usr/share/doc/nginx"));
        Assert.False(Profiles.Prunes([docs], "/usr/share/doc"));
        Assert.False(Profiles.Prunes([Profiles.Get("logs")], "/var/log/apt"));
    }

    [Fact]
    public void Docs_list_each_profile_with_its_patterns()
    {
        var doc = File.ReadAllText(Path.Combine(RepoRoot(), "docs", "kiln-yaml.md"));
        foreach (var profile in Profiles.All)
        {
            var row = doc.Split('\n').FirstOrDefault(l => l.StartsWith($"| `{profile.Name}` |", StringComparison.Ordinal));
            Assert.True(row is not null, $"docs/kiln-yaml.md has no row for profile {profile.Name}");
            foreach (var pattern in profile.Remove.Concat(profile.Except).Concat(profile.Pruned))
            {
                Assert.Contains($"`{pattern}`", row, StringComparison.Ordinal);
            }
        }
    }

    [Theory]
    [InlineData("/etc/ssl", "/etc/ssl", true)]
    [InlineData("/etc/ssl", "/etc/ssl/certs/ca.pem", true)]
    [InlineData("/etc/ssl", "/etc/sslx", false)]
    [InlineData("/usr/share/zoneinfo/*", "/usr/share/zoneinfo/UTC", true)]
    [InlineData("/usr/share/zoneinfo/*", "/usr/share/zoneinfo/Europe/Paris", false)]
    [InlineData("/usr/**/*.so", "/usr/lib/x/libz.so", true)]
    [InlineData("/usr/**/*.so", "/usr/a.so", true)]
    [InlineData("/usr/lib/lib?.so", "/usr/lib/libz.so", true)]
    public void Keep_globs_match_names_and_trees(string pattern, string path, bool matches)
    {
        Assert.Equal(matches, new PathGlob(pattern).Matches(path));
    }

    private static string RepoRoot()
    {
        var dir = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(dir, "Kiln.slnx")))
        {
            dir = Path.GetDirectoryName(dir) ?? throw new InvalidOperationException("no Kiln.slnx above the test binaries");
        }
        return dir;
    }
}
