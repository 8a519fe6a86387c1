using System.Diagnostics;

namespace Kiln.Cli.Tests;

/// <summary>The checks by which ./kiln skips scripts/setup.sh and the tool's build (scripts/current.sh), on a made-up
/// checkout: out/kiln must never be taken as current after a source changed.</summary>
public sealed class WrapperTests : IDisposable
{
    private readonly TempDir _dir = new("kiln-wrapper");
    private readonly DateTime _past = DateTime.Now.AddMinutes(-10);

    public WrapperTests()
    {
        foreach (var d in new[] { "src/Kiln.A/Sub", "src/Kiln.A/obj", "src/Kiln.A/bin", "out", "packaging" })
        {
            Directory.CreateDirectory(Path.Combine(Root, d));
        }
        foreach (var f in new[] { "src/Kiln.A/A.cs", "src/Kiln.A/Sub/B.cs", "src/Kiln.A/Kiln.A.csproj", "Directory.Build.props", "packaging/control" })
        {
            File.WriteAllText(Path.Combine(Root, f), "x\n");
        }
        foreach (var f in new[] { "out/kiln", "out/kiln-sandbox-exec" })
        {
            File.WriteAllText(Path.Combine(Root, f), "#!/bin/sh\n");
            File.SetUnixFileMode(Path.Combine(Root, f), (UnixFileMode)0b111_101_101);
        }
        // As scripts/build-tool.sh leaves it: the sources older than the time before the build, the dirs older than
        // the time after it.
        foreach (var entry in Directory.EnumerateFileSystemEntries(Path.Combine(Root, "src"), "*", SearchOption.AllDirectories).Append(Path.Combine(Root, "src")))
        {
            if (Directory.Exists(entry))
            {
                Directory.SetLastWriteTime(entry, _past);
            }
            else
            {
                File.SetLastWriteTime(entry, _past);
            }
        }
        File.SetLastWriteTime(Path.Combine(Root, "Directory.Build.props"), _past);
        Assert.Equal(0, Bash($"kiln_sources {Q(Root)} > {Q(Root)}/out/.sources && touch {Q(Root)}/out/.sources-time {Q(Root)}/out/.sources-dirs").Code);
    }

    private string Root => _dir.Path;

    public void Dispose() => _dir.Dispose();

    /// <summary>Both implementations of the check (bash for scripts/, kiln's own for ./kiln), which must agree.</summary>
    private bool ToolIsCurrent()
    {
        bool bash = Bash($"tool_is_current {Q(Root)}").Code == 0;
        Assert.Equal(bash, Checkout.ToolIsCurrent(Root));
        return bash;
    }

    private bool SetupIsCurrent(string mode)
    {
        bool bash = Bash($"setup_is_current {Q(Root)} {mode}").Code == 0;
        Assert.Equal(bash, Checkout.SetupIsCurrent(Root, mode));
        return bash;
    }

    [Fact]
    public void Lists_sources_without_bin_and_obj()
    {
        var lines = File.ReadAllLines(Path.Combine(Root, "out", ".sources"));
        Assert.Equal(["d src", "d src/Kiln.A", "d src/Kiln.A/Sub", "f src/Kiln.A/A.cs", "f src/Kiln.A/Kiln.A.csproj", "f src/Kiln.A/Sub/B.cs",
            "f Directory.Build.props"], lines);
    }

    [Fact]
    public void The_tool_is_current_when_nothing_changed_and_when_only_bin_or_obj_did()
    {
        Assert.True(ToolIsCurrent());
        File.WriteAllText(Path.Combine(Root, "src/Kiln.A/obj/new.cache"), "x");
        File.WriteAllText(Path.Combine(Root, "src/Kiln.A/bin/kiln.dll"), "x");
        Assert.True(ToolIsCurrent());
    }

    [Theory]
    [InlineData("edit")]
    [InlineData("new file")]
    [InlineData("new file deep")]
    [InlineData("new dir")]
    [InlineData("removed file")]
    [InlineData("renamed file")]
    [InlineData("old file moved in")]
    [InlineData("props")]
    [InlineData("props removed")]
    [InlineData("no list")]
    [InlineData("no binary")]
    public void The_tool_is_stale_after_any_source_change(string change)
    {
        var a = Path.Combine(Root, "src/Kiln.A/A.cs");
        switch (change)
        {
            case "edit": File.AppendAllText(a, "y"); break;
            case "new file": File.WriteAllText(Path.Combine(Root, "src/Kiln.A/C.cs"), "x"); break;
            case "new file deep": File.WriteAllText(Path.Combine(Root, "src/Kiln.A/Sub/C.cs"), "x"); break;
            case "new dir": Directory.CreateDirectory(Path.Combine(Root, "src/Kiln.B")); break;
            case "removed file": File.Delete(a); break;
            case "renamed file": File.Move(a, Path.Combine(Root, "src/Kiln.A/Z.cs")); break;
            case "old file moved in":
                var outside = Path.Combine(Root, "D.cs");
                File.WriteAllText(outside, "x");
                File.SetLastWriteTime(outside, _past.AddDays(-1));
                File.Move(outside, Path.Combine(Root, "src/Kiln.A/Sub/D.cs"));
                break;
            case "props": File.AppendAllText(Path.Combine(Root, "Directory.Build.props"), "y"); break;
            case "props removed": File.Delete(Path.Combine(Root, "Directory.Build.props")); break;
            case "no list": File.Delete(Path.Combine(Root, "out/.sources")); break;
            case "no binary": File.Delete(Path.Combine(Root, "out/kiln")); break;
            default: throw new ArgumentException(change);
        }
        Assert.False(ToolIsCurrent(), change);
    }

    [Fact]
    public void Setup_is_current_only_for_the_list_it_installed()
    {
        var stamp = Path.Combine(Root, "out/.setup-build");
        Assert.False(SetupIsCurrent("build"));
        File.Copy(Path.Combine(Root, "packaging/control"), stamp);
        Assert.True(SetupIsCurrent("build"));
        Assert.False(SetupIsCurrent("test"));
        File.AppendAllText(Path.Combine(Root, "packaging/control"), "Depends: more\n");
        Assert.False(SetupIsCurrent("build"));
    }

    [Fact]
    public void The_wrapper_execs_a_self_checking_kiln_and_otherwise_takes_the_slow_path()
    {
        File.Copy(Path.Combine(ExampleWebFixture.RepoRoot, "kiln"), Path.Combine(Root, "kiln"));
        File.SetUnixFileMode(Path.Combine(Root, "kiln"), (UnixFileMode)0b111_101_101);
        Directory.CreateDirectory(Path.Combine(Root, "scripts"));
        File.WriteAllText(Path.Combine(Root, "scripts/refresh.sh"), "echo \"slow path: $*\"\n");
        File.WriteAllText(Path.Combine(Root, "out/kiln"), "#!/bin/sh\necho \"kiln of $KILN_CHECKOUT: $*\"\n");
        // A kiln built before kiln checked itself would run stale: without the marker the slow path checks for it.
        Assert.Equal("slow path: build x", Run(Path.Combine(Root, "kiln"), "build", "x"));
        File.WriteAllText(Path.Combine(Root, "out/.checks-itself"), "");
        Assert.Equal($"kiln of {Root}: build x", Run(Path.Combine(Root, "kiln"), "build", "x"));
    }

    [Fact]
    public void Kiln_given_a_stale_checkout_hands_over_to_the_slow_path_with_its_arguments()
    {
        Directory.CreateDirectory(Path.Combine(Root, "scripts"));
        File.WriteAllText(Path.Combine(Root, "scripts/refresh.sh"), "echo \"slow path [$KILN_CHECKOUT]: $*\"\n");
        File.Copy(Path.Combine(Root, "packaging/control"), Path.Combine(Root, "out/.setup-build"));
        File.AppendAllText(Path.Combine(Root, "src/Kiln.A/A.cs"), "changed");
        var psi = KilnProcess.StartInfo(Root, "--version");
        psi.Environment["KILN_CHECKOUT"] = Root;
        var r = KilnProcess.Run(psi, TimeSpan.FromMinutes(1));
        Assert.Equal(0, r.ExitCode);
        // KILN_CHECKOUT is still in the exec'd environment (the script unsets it before it runs the new kiln).
        Assert.Equal($"slow path [{Root}]: --version", r.Stdout.Trim());
    }

    private static string Run(string file, params string[] args)
    {
        var r = KilnProcess.Tool(file, args);
        Assert.True(r.ExitCode == 0, r.All);
        return r.Stdout.Trim();
    }

    private static string Q(string s) => "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    private static (int Code, string Output) Bash(string script)
    {
        var current = Path.Combine(ExampleWebFixture.RepoRoot, "scripts", "current.sh");
        var psi = new ProcessStartInfo("/bin/bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add($". {Q(current)} && {script}");
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout + stderr.Result);
    }
}
