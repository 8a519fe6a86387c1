using Kiln.Oci.Registry;

namespace Kiln.Oci.Tests.Registry;

public sealed class RegistriesConfTests
{
    [Fact]
    public void Reads_insecure_registries_of_the_v2_and_v1_forms()
    {
        var conf = RegistriesConf.Parse("registries.conf", """
            unqualified-search-registries = ["a.example"]  # not used by Kiln
            [[registry]]
            location = "plain.example:5000"
            insecure = true

            [[registry]]
            prefix = "x"
            location = 'secure.example'
            insecure = false
            [[registry.mirror]]
            location = "mirror.example"
            insecure = true

            [[registry]]
            location = "*.lab.example"
            insecure = true

            [registries.insecure]
            registries = [
              "old.example", # a comment
              "old2.example:5000",
            ]
            """);
        Assert.True(conf.IsInsecure("plain.example:5000"));
        Assert.False(conf.IsInsecure("plain.example"));
        Assert.False(conf.IsInsecure("secure.example"));
        Assert.False(conf.IsInsecure("mirror.example"));
        Assert.True(conf.IsInsecure("a.lab.example:443"));
        Assert.True(conf.IsInsecure("old.example"));
        Assert.True(conf.IsInsecure("old2.example:5000"));
        Assert.False(conf.IsInsecure("other.example"));
    }

    [Fact]
    public void The_longest_matching_prefix_wins_for_namespaces()
    {
        var conf = RegistriesConf.Parse("registries.conf", """
            [[registry]]
            location = "reg.example:5000"
            insecure = false

            [[registry]]
            prefix = "reg.example:5000/lab"
            location = "reg.example:5000/lab"
            insecure = true

            [[registry]]
            prefix = "reg.example:5000/lab/secure"
            location = "reg.example:5000/lab/secure"

            [[registry]]
            prefix = "reg.example:5000/moved"
            location = "mirror.example/elsewhere"
            insecure = true

            [[registry]]
            prefix = "*.corp.example"
            location = "ignored.example"
            insecure = true

            [[registry]]
            prefix = "build.corp.example/team"
            location = "build.corp.example/team"
            insecure = false
            """);
        Assert.False(conf.IsInsecure("reg.example:5000"));
        Assert.False(conf.IsInsecure("reg.example:5000/web"));
        Assert.True(conf.IsInsecure("reg.example:5000/lab"));
        Assert.True(conf.IsInsecure("reg.example:5000/lab/web"));
        Assert.False(conf.IsInsecure("reg.example:5000/lab/secure/web"));
        // A prefix matches at a path boundary only: "lab" is not a parent of "laboratory".
        Assert.False(conf.IsInsecure("reg.example:5000/laboratory/web"));
        Assert.Equal("reg.example:5000/lab", conf.Find("reg.example:5000/lab/web")!.Prefix);

        Assert.Equal("mirror.example/elsewhere/app", conf.Rewrite("reg.example:5000/moved/app"));
        Assert.Equal("reg.example:5000/lab/web", conf.Rewrite("reg.example:5000/lab/web"));
        Assert.Equal("x.corp.example/app", conf.Rewrite("x.corp.example/app"));

        Assert.True(conf.IsInsecure("build.corp.example/app"));
        Assert.False(conf.IsInsecure("build.corp.example/team/app"));
        Assert.True(conf.IsInsecure("a.b.corp.example:8443/app"));
        Assert.False(conf.IsInsecure("corp.example/app"));
        Assert.Null(conf.Find("other.example/app"));
    }

    [Fact]
    public void A_wildcard_prefix_with_a_path_is_refused_with_file_and_line()
    {
        var e = Assert.Throws<RegistryException>(() => RegistriesConf.Parse("r.conf", "\n[[registry]]\nprefix = \"*.x.example/ns\"\ninsecure = true\n"));
        Assert.Contains("r.conf:2", e.Message);
        Assert.Contains("*.x.example/ns", e.Message);
    }

    [Fact]
    public void A_drop_in_overrides_the_main_file()
    {
        string dir = Directory.CreateTempSubdirectory("kiln-regconf-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "registries.conf"), "[[registry]]\nlocation = \"r.example\"\ninsecure = true\n");
            Directory.CreateDirectory(Path.Combine(dir, "registries.conf.d"));
            File.WriteAllText(Path.Combine(dir, "registries.conf.d", "50-r.conf"), "[[registry]]\nlocation = \"r.example\"\ninsecure = false\n");
            Assert.False(RegistriesConf.Load(Path.Combine(dir, "registries.conf")).IsInsecure("r.example"));
            Assert.False(RegistriesConf.Load(Path.Combine(dir, "missing.conf")).IsInsecure("r.example"));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void A_bad_value_is_named_with_file_and_line()
    {
        var e = Assert.Throws<RegistryException>(() => RegistriesConf.Parse("r.conf", "[[registry]]\nlocation = \"a\"\ninsecure = yes\n"));
        Assert.Contains("r.conf:3", e.Message);
        Assert.Contains("'yes'", e.Message);
    }
}
