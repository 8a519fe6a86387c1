using Kiln.Build.Execution;
using Kiln.Build.Tests.Testing.Vm;

namespace Kiln.Build.Tests.Execution;

/// <summary>When a package step may leave debconf's preconfigure hook out: only when it could do nothing.</summary>
public sealed class DebconfPreconfigureTests : IDisposable
{
    private readonly ScratchDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly KeyValuePair<string, string>[] Environment = [new("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")];

    /// <summary>A layer as a minbase bootstrap has it: debconf's hook and apt's autoremove file, no apt-utils.</summary>
    private string[] Minbase()
    {
        var layer = Path.Combine(_dir.Path, "base");
        Write(layer, "etc/apt/apt.conf.d/70debconf", "// Pre-configure all packages with debconf before they are installed.\n" + DebconfPreconfigure.Hook + "\n");
        Write(layer, "etc/apt/apt.conf.d/01autoremove", "APT\n{\n  NeverAutoRemove\n  {\n\t# kernels\n\t\"^linux-image-.*\";\n  };\n};\n");
        Directory.CreateDirectory(Path.Combine(layer, "usr/bin"));
        return [Path.Combine(_dir.Path, "top"), layer];
    }

    private static void Write(string root, string path, string text)
    {
        var file = Path.Combine(root, path);
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        File.WriteAllText(file, text);
    }

    [Fact]
    public void The_hook_is_left_out_where_it_can_only_say_that_apt_utils_is_missing()
    {
        var layers = Minbase();
        Directory.CreateDirectory(layers[0]);
        Assert.True(DebconfPreconfigure.IsNoOp(layers, Environment));
    }

    [Theory]
    [InlineData("usr/bin/apt-extracttemplates", "#!/bin/sh\n")]
    [InlineData("etc/apt/apt.conf.d/20listchanges", "DPkg::Pre-Install-Pkgs { \"/usr/bin/apt-listchanges --apt || test $? -lt 10\"; };\n")]
    [InlineData("etc/apt/apt.conf.d/10include", "#include \"/opt/apt/extra.conf\";\n")]
    [InlineData("etc/apt/apt.conf.d/10dirs", "Dir::Etc::Parts \"/opt/apt/conf.d\";\n")]
    [InlineData("etc/apt/apt.conf", "Dir { Etc \"/opt/apt\"; };\n")]
    public void The_hook_stays_where_it_could_do_something_or_other_configuration_could_be_read(string path, string text)
    {
        var layers = Minbase();
        Write(layers[0], path, text);
        Assert.False(DebconfPreconfigure.IsNoOp(layers, Environment));
    }

    [Fact]
    public void The_hook_stays_with_cdebconf_or_another_apt_configuration_or_without_debconfs_line()
    {
        var layers = Minbase();
        Directory.CreateDirectory(layers[0]);
        Assert.False(DebconfPreconfigure.IsNoOp(layers, [.. Environment, new("DEBCONF_USE_CDEBCONF", "1")]));
        Assert.False(DebconfPreconfigure.IsNoOp(layers, [.. Environment, new("APT_CONFIG", "/opt/apt.conf")]));
        Assert.False(DebconfPreconfigure.IsNoOp(layers, [new("PATH", "bin:/usr/bin")]));
        File.Delete(Path.Combine(layers[1], "etc/apt/apt.conf.d/70debconf"));
        Assert.False(DebconfPreconfigure.IsNoOp(layers, Environment));
    }

    [Fact]
    public void A_link_among_the_apt_configuration_files_keeps_the_hook()
    {
        var layers = Minbase();
        Directory.CreateDirectory(Path.Combine(layers[0], "etc/apt/apt.conf.d"));
        File.CreateSymbolicLink(Path.Combine(layers[0], "etc/apt/apt.conf.d/50extra"), "/opt/extra.conf");
        Assert.False(DebconfPreconfigure.IsNoOp(layers, Environment));
    }
}
