using System.Diagnostics;
using System.Text.Json;

namespace Kiln.Cli.Tests;

/// <summary>Kiln's SPDX 2.3 SBOM read by an independent SPDX tool, Microsoft's sbom-tool (a dotnet tool from NuGet,
/// installed once into a cache folder): it parses the document, counts its packages and checks every file's checksum
/// against the image's own files.</summary>
[Trait("Tier", "Slow")] // starts sbom-tool (and installs it on first use)
public sealed class SbomToolTests : IDisposable
{
    private const string Version = "4.1.13";
    private readonly TempDir _store = new("kiln-store");

    public void Dispose() => _store.Dispose();

    private const string Status = """
        Package: hello
        Status: install ok installed
        Architecture: amd64
        Source: hello-src (2.10-3)
        Version: 2.10-3+b1
        Maintainer: Hello Maintainers <hello@example.org>
        Description: says hello

        Package: libfoo1
        Status: install ok installed
        Architecture: amd64
        Multi-Arch: same
        Version: 2.0-1
        Maintainer: Foo Person <foo@example.org>

        """;

    [Fact]
    public void Sbom_tool_reads_the_sbom_and_finds_each_file_of_the_image_with_its_checksum()
    {
        using var ctx = new TinyContext("""
            images:
              pkgs:
                from: scratch
                steps:
                  - copy: pkgs/
                    to: /
                config: {cmd: [/usr/bin/hello]}

            """);
        ctx.Write("pkgs/var/lib/dpkg/status", Status);
        ctx.Write("pkgs/var/lib/dpkg/info/hello.list", "/.\n/usr\n/usr/bin\n/usr/bin/hello\n/usr/share/doc/hello/copyright\n");
        ctx.Write("pkgs/var/lib/dpkg/info/libfoo1:amd64.list", "/usr/lib/libfoo.so.1\n");
        ctx.Write("pkgs/usr/bin/hello", "#!/bin/sh\necho hello\n");
        ctx.Write("pkgs/usr/share/doc/hello/copyright", "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nCopyright: 2026 someone\nLicense: GPL-3+\n");
        ctx.Write("pkgs/usr/lib/libfoo.so.1", "a library");
        var build = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.True(build.ExitCode == 0, build.All);
        var sbomPath = Path.Combine(ctx.Path, "sbom.spdx.json");
        var sbom = KilnProcess.Run(_store.Path, "sbom", "pkgs", "-o", sbomPath);
        Assert.True(sbom.ExitCode == 0, sbom.All);
        var rootfs = Path.Combine(ctx.Path, "pkgs.rootfs.tar");
        var export = KilnProcess.Run(_store.Path, "export", "pkgs", "--format", "rootfs", "-o", rootfs);
        Assert.True(export.ExitCode == 0, export.All);

        // The drop sbom-tool validates: the files the SBOM lists, taken from the image, and the SBOM where it looks.
        var files = Path.Combine(ctx.Path, "files");
        Directory.CreateDirectory(files);
        Assert.Equal(0, KilnProcess.Tool("tar", "-xf", rootfs, "-C", files).ExitCode);
        var drop = Path.Combine(ctx.Path, "drop");
        List<string> listed;
        using (var doc = JsonDocument.Parse(File.ReadAllBytes(sbomPath)))
        {
            listed = [.. doc.RootElement.GetProperty("files").EnumerateArray().Select(f => f.GetProperty("fileName").GetString()![2..])];
        }
        Assert.Equal(["usr/bin/hello", "usr/lib/libfoo.so.1", "usr/share/doc/hello/copyright"], listed.Order(StringComparer.Ordinal));
        foreach (var f in listed)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(drop, f))!);
            File.Copy(Path.Combine(files, f), Path.Combine(drop, f));
        }
        Directory.CreateDirectory(Path.Combine(drop, "_manifest", "spdx_2.2"));
        File.Copy(sbomPath, Path.Combine(drop, "_manifest", "spdx_2.2", "manifest.spdx.json"));

        var output = Path.Combine(ctx.Path, "validation.json");
        var run = Run(Tool(), "validate", "-b", drop, "-o", output, "-mi", "SPDX:2.2");
        Assert.True(run.ExitCode == 0 && File.Exists(output), run.All);
        using var result = JsonDocument.Parse(File.ReadAllBytes(output));
        Assert.True(result.RootElement.GetProperty("Result").GetString() == "Success", result.RootElement.ToString());
        var counts = result.RootElement.GetProperty("Summary").GetProperty("ValidationTelemetery");
        Assert.Equal(3, counts.GetProperty("FilesSuccessfulCount").GetInt32());
        Assert.Equal(2, counts.GetProperty("TotalPackagesInManifest").GetInt32());
    }

    /// <summary>sbom-tool, installed with <c>dotnet tool install --tool-path</c> into a cache folder on first use.</summary>
    private static string Tool()
    {
        var dir = Path.Combine("/var/cache/kiln-tests", "sbom-tool-" + Version);
        var tool = Path.Combine(dir, "sbom-tool");
        if (!File.Exists(tool))
        {
            var install = KilnProcess.Tool("dotnet", "tool", "install", "Microsoft.Sbom.DotNetTool", "--version", Version, "--tool-path", dir);
            Assert.True(install.ExitCode == 0, install.All);
        }
        return tool;
    }

    private static KilnProcess.Result Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        // Built for .NET 8; the host has a newer runtime only.
        psi.Environment["DOTNET_ROLL_FORWARD"] = "Major";
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        return KilnProcess.Run(psi, TimeSpan.FromMinutes(2));
    }
}
