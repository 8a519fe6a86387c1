namespace Kiln.Cli.Tests;

/// <summary>A build context for tiny images: busybox (from Debian's busybox-static) as /bin/busybox with
/// /bin/sh linked to it, under <c>rootfs/</c>, and a kiln.yaml written by the test.</summary>
public sealed class TinyContext : IDisposable
{
    private readonly TempDir _dir = new("kiln-ctx");

    public TinyContext(string yaml)
    {
        var bin = System.IO.Path.Combine(_dir.Path, "rootfs", "bin");
        Directory.CreateDirectory(bin);
        File.Copy("/bin/busybox", System.IO.Path.Combine(bin, "busybox"));
        File.CreateSymbolicLink(System.IO.Path.Combine(bin, "sh"), "busybox");
        foreach (var d in new[] { "tmp", "etc", "proc", "sys", "dev" })
        {
            Directory.CreateDirectory(System.IO.Path.Combine(_dir.Path, "rootfs", d));
        }
        Write("kiln.yaml", yaml);
    }

    /// <summary>The first step of a tiny image: the busybox root filesystem.</summary>
    public const string RootStep = "      - copy: rootfs/\n        to: /\n";

    public string Path => _dir.Path;

    public string Yaml => System.IO.Path.Combine(_dir.Path, "kiln.yaml");

    public void Write(string relative, string text)
    {
        var p = System.IO.Path.Combine(_dir.Path, relative);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(p)!);
        File.WriteAllText(p, text);
    }

    public void Dispose() => _dir.Dispose();
}
