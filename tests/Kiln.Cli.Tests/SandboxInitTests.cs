namespace Kiln.Cli.Tests;

/// <summary>The sandbox's PID 1 is kiln itself (<c>kiln __sandbox-init</c>); it must never mount anything when
/// someone runs it outside the namespaces kiln makes.</summary>
public sealed class SandboxInitTests
{
    [Fact]
    public void Run_by_hand_it_refuses_and_mounts_nothing()
    {
        using var dir = new TempDir("kiln-init");
        foreach (var d in new[] { "merged", "lower", "upper", "work" })
        {
            Directory.CreateDirectory(dir.Sub(d));
        }
        var r = KilnProcess.Run(dir.Sub("store"), "__sandbox-init", "--merged", dir.Sub("merged"), "--lower", dir.Sub("lower"),
            "--upper", dir.Sub("upper"), "--work", dir.Sub("work"), "--", "true");
        Assert.Equal(125, r.ExitCode);
        Assert.Contains("kiln-sandbox: __sandbox-init is kiln's own", r.Stderr);
        Assert.DoesNotContain(dir.Path, File.ReadAllText("/proc/self/mounts"));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Sub("merged")));
    }
}
