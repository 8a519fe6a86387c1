using System.Formats.Tar;
using System.Text.Json.Nodes;
using static Kiln.Cli.Tests.ForeignImage;

namespace Kiln.Cli.Tests;

/// <summary><c>from: oci:</c> and <c>from: oci-archive:</c> of images as other tools write them (issue 18): configs
/// without their optional fields, Docker schema 2, plain, gzip and zstd layers, indexes and nested indexes, device
/// nodes. Each valid form builds, runs a step on the image and passes a file check.</summary>
public sealed class ImportTests : IDisposable
{
    private readonly TempDir _store = new("kiln-store");
    private readonly TempDir _source = new("kiln-foreign");

    public void Dispose()
    {
        _store.Dispose();
        _source.Dispose();
    }

    private static readonly JsonObject Nulls = new() { ["created"] = null, ["config"] = null, ["history"] = null };

    private static readonly JsonObject DockerStyle = new()
    {
        ["created"] = "2024-05-01T10:00:00.123456789Z",
        ["docker_version"] = "24.0.7",
        ["config"] = new JsonObject { ["Env"] = new JsonArray("PATH=/bin"), ["Cmd"] = null, ["Labels"] = null, ["Volumes"] = null, ["OnBuild"] = null },
        ["container_config"] = new JsonObject { ["Hostname"] = "" },
        ["history"] = new JsonArray(
            new JsonObject { ["created_by"] = "ADD rootfs /" },
            new JsonObject { ["created_by"] = "ENV PATH=/bin", ["empty_layer"] = true },
            new JsonObject { ["created_by"] = "ADD hello /" }),
    };

    /// <summary>Writes the image that <paramref name="form"/> names and returns what <c>from:</c> says to import it.</summary>
    private string Write(string form)
    {
        var img = new ForeignImage();
        JsonObject Plain(Packing packing, bool docker, JsonObject? extra = null, string arch = "amd64", string? variant = null) =>
            img.Image([BusyboxLayer(), FileLayer("hello", $"hello from {arch}, {form}\n")], packing, docker, arch, variant, extra);
        var layout = _source.Sub("layout");
        var archive = _source.Sub("image.tar");
        var (top, asArchive) = form switch
        {
            "oci-gzip-minimal-config" => (Plain(Packing.Gzip, false), false),
            "oci-gzip-null-config-fields" => (Plain(Packing.Gzip, false, Nulls), true),
            "oci-tar" => (Plain(Packing.Tar, false), false),
            "oci-zstd" => (Plain(Packing.Zstd, false), true),
            "docker-gzip" => (Plain(Packing.Gzip, true, DockerStyle), false),
            "docker-tar" => (Plain(Packing.Tar, true, DockerStyle), true),
            "docker-zstd" => (Plain(Packing.Zstd, true), false),
            "oci-index" => (img.Index(false, Plain(Packing.Gzip, false, arch: "arm64", variant: "v8"), Plain(Packing.Gzip, false)), true),
            "docker-manifest-list" => (img.Index(true, Plain(Packing.Gzip, true, arch: "s390x"), Plain(Packing.Gzip, true, DockerStyle)), false),
            "nested-index" => (img.Index(false, img.Index(false, Plain(Packing.Zstd, false, arch: "arm64"), Plain(Packing.Zstd, false))), true),
            "nested-index-layout" => (img.Index(false, img.Index(true, Plain(Packing.Gzip, true, arch: "arm", variant: "v7"), Plain(Packing.Gzip, true))), false),
            _ => throw new ArgumentException(form),
        };
        if (asArchive)
        {
            img.WriteArchive(archive, top, "tiny");
            return $"oci-archive:{archive}:tiny";
        }
        img.WriteLayout(layout, top, "tiny");
        return $"oci:{layout}:tiny";
    }

    private static void AssertNoCrash(KilnProcess.Result r)
    {
        Assert.NotEqual(134, r.ExitCode);
        Assert.DoesNotContain("   at ", r.All, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", r.All, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("oci-gzip-minimal-config")]
    [InlineData("oci-gzip-null-config-fields")]
    [InlineData("oci-tar")]
    [InlineData("oci-zstd")]
    [InlineData("docker-gzip")]
    [InlineData("docker-tar")]
    [InlineData("docker-zstd")]
    [InlineData("oci-index")]
    [InlineData("docker-manifest-list")]
    [InlineData("nested-index")]
    [InlineData("nested-index-layout")]
    public void A_valid_image_imports_runs_a_step_and_passes_a_file_check(string form)
    {
        var from = Write(form);
        using var ctx = new TinyContext(
            $"images:\n  imported:\n    from: {from}\n    steps:\n      - run: cat /hello > /copied\n" +
            $"    test:\n      file:\n        /copied: {{contains: [\"hello from amd64, {form}\"]}}\n");
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        AssertNoCrash(r);
        Assert.True(r.ExitCode == 0, r.All);
        // What Kiln wrote names OCI layer types only, whatever the source used.
        using (var manifest = System.Text.Json.JsonDocument.Parse(File.ReadAllText(StoreReader.BlobPath(_store.Path, StoreReader.ManifestDigest(_store.Path, "imported")))))
        {
            Assert.All(manifest.RootElement.GetProperty("layers").EnumerateArray(),
                l => Assert.StartsWith("application/vnd.oci.image.layer.v1.tar", l.GetProperty("mediaType").GetString(), StringComparison.Ordinal));
        }
        Assert.Equal(0, KilnProcess.Run(_store.Path, "verify").ExitCode);
        Leftovers.AssertNone(_store.Path);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void An_index_with_no_image_for_this_host_is_bad_input_that_names_the_platforms_there(bool asArchive)
    {
        var img = new ForeignImage();
        JsonObject For(string arch, string? variant = null) => img.Image([FileLayer("hello", arch)], Packing.Gzip, false, arch, variant);
        var top = img.Index(false, img.Index(true, For("arm64", "v8"), For("s390x"), For("amd64", "v9"))); // no amd64 "v9": not a level
        string from;
        if (asArchive)
        {
            img.WriteArchive(_source.Sub("image.tar"), top, "tiny");
            from = $"oci-archive:{_source.Sub("image.tar")}:tiny";
        }
        else
        {
            img.WriteLayout(_source.Sub("layout"), top, "tiny");
            from = $"oci:{_source.Sub("layout")}:tiny";
        }
        using var ctx = new TinyContext($"images:\n  imported:\n    from: {from}\n");
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        AssertNoCrash(r);
        Assert.True(r.ExitCode == 2, r.All);
        Assert.Contains("no image for this host's platform (linux/amd64", r.Stderr);
        Assert.Contains("linux/arm64/v8, linux/s390x, linux/amd64/v9", r.Stderr);
        Assert.Contains("kiln.yaml:3", r.Stderr);
        Assert.False(Directory.Exists(Path.Combine(_store.Path, "blobs")) && Directory.EnumerateFiles(Path.Combine(_store.Path, "blobs"), "*", SearchOption.AllDirectories).Any(),
            "nothing is written to the store");
    }

    [Theory]
    [InlineData("oci:{0}/no-such-layout:tiny", "not an OCI image layout")]
    [InlineData("oci:{0}/layout:other", "no image tagged 'other'")]
    [InlineData("oci-archive:{0}/no-such.tar:tiny", "no-such.tar")]
    [InlineData("oci-archive:{0}/image.tar:other", "'other'")]
    public void A_missing_layout_archive_or_tag_is_bad_input_naming_the_line(string fromFormat, string says)
    {
        var img = new ForeignImage();
        var top = img.Image([FileLayer("hello", "hi")], Packing.Gzip, false, "amd64", null);
        img.WriteLayout(_source.Sub("layout"), top, "tiny");
        img.WriteArchive(_source.Sub("image.tar"), top, "tiny");
        using var ctx = new TinyContext($"images:\n  imported:\n    from: {string.Format(System.Globalization.CultureInfo.InvariantCulture, fromFormat, _source.Path)}\n");
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        AssertNoCrash(r);
        Assert.True(r.ExitCode == 2, r.All);
        Assert.Contains(says, r.Stderr);
        Assert.Contains("kiln.yaml:3", r.Stderr);
    }

    [Fact]
    [Trait("Tier", "Slow")] // a build that runs a step
    public void A_docker_save_archive_without_an_oci_index_imports_by_repo_tag_and_several_images_need_one()
    {
        byte[] busybox = BusyboxLayer(), hello = FileLayer("hello", "hello from a docker save\n"), other = FileLayer("hello", "the other image\n");
        var archive = _source.Sub("saved.tar");
        Kiln.Oci.Tests.Archives.DockerSaveArchive.Write(archive,
            new(["other:1"], Kiln.Oci.Tests.Archives.DockerSaveArchive.Config(busybox, other), [busybox, other]),
            new(["localhost/tiny:latest", "tiny:v2"], Kiln.Oci.Tests.Archives.DockerSaveArchive.Config(busybox, hello), [busybox, Pack(hello, Packing.Gzip)]));

        using (var ambiguous = new TinyContext($"images:\n  imported:\n    from: docker-archive:{archive}\n"))
        {
            var r = KilnProcess.Run(_store.Path, "build", ambiguous.Path);
            AssertNoCrash(r);
            Assert.True(r.ExitCode == 2, r.All);
            Assert.Contains("holds 2 images", r.Stderr);
            Assert.Contains("other:1, localhost/tiny:latest, tiny:v2", r.Stderr);
            Assert.Contains("kiln.yaml:3", r.Stderr);
        }

        using var ctx = new TinyContext(
            $"images:\n  imported:\n    from: docker-archive:{archive}:localhost/tiny\n    steps:\n      - run: cat /hello > /copied\n" +
            "    test:\n      file:\n        /copied: {contains: [\"hello from a docker save\"]}\n");
        var built = KilnProcess.Run(_store.Path, "build", ctx.Path);
        AssertNoCrash(built);
        Assert.True(built.ExitCode == 0, built.All);
        Assert.Equal(0, KilnProcess.Run(_store.Path, "verify").ExitCode);
        Leftovers.AssertNone(_store.Path);
    }

    [Fact]
    public void A_manifest_whose_config_is_not_an_image_config_is_refused_with_its_media_type()
    {
        var img = new ForeignImage();
        var config = img.Blob("{}"u8.ToArray(), "application/vnd.example.artifact.config.v1+json");
        var manifest = new JsonObject { ["schemaVersion"] = 2, ["mediaType"] = OciManifest, ["config"] = config, ["layers"] = new JsonArray() };
        var desc = img.Blob(System.Text.Encoding.UTF8.GetBytes(manifest.ToJsonString()), OciManifest);
        img.WriteLayout(_source.Sub("layout"), desc, "tiny");
        using var ctx = new TinyContext($"images:\n  imported:\n    from: oci:{_source.Sub("layout")}:tiny\n");
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        AssertNoCrash(r);
        Assert.True(r.ExitCode == 1, r.All);
        Assert.Contains("application/vnd.example.artifact.config.v1+json", r.Stderr);
        Assert.Contains("not a container image", r.Stderr);
    }

    /// <summary>The major:minor of the block device that holds the host's root filesystem.</summary>
    private static (int Major, int Minor) RootDisk()
    {
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            var f = line.Split(' ');
            if (f[4] == "/" && f[2].Split(':') is [var major, var minor] && major != "0")
            {
                return (int.Parse(major, System.Globalization.CultureInfo.InvariantCulture), int.Parse(minor, System.Globalization.CultureInfo.InvariantCulture));
            }
        }
        // A root on overlay or tmpfs has no device of its own: the first disk the kernel lists will do.
        var dev = Directory.GetDirectories("/sys/block").Where(d => !Path.GetFileName(d).StartsWith("loop", StringComparison.Ordinal))
            .Select(d => File.ReadAllText(Path.Combine(d, "dev")).Trim().Split(':')).First();
        return (int.Parse(dev[0], System.Globalization.CultureInfo.InvariantCulture), int.Parse(dev[1], System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public void Device_nodes_in_an_imported_layer_are_kept_but_open_no_host_device()
    {
        // The host's root disk, which this machine may not let even root read (a device cgroup), and devices that the
        // host does read: a loop device over a file of known bytes, and /dev/zero. In the sandbox all read nothing.
        var (major, minor) = RootDisk();
        using var backing = new TempDir("kiln-loop");
        var file = backing.Sub("disk.img");
        File.WriteAllText(file, string.Concat(Enumerable.Repeat("KILN-LOOP-DATA\n", 256)));
        var loop = KilnProcess.Tool("losetup", "--find", "--show", "--read-only", file);
        Assert.True(loop.ExitCode == 0, loop.All);
        var loopDev = loop.Stdout.Trim();
        try
        {
            var hostRead = KilnProcess.Tool("head", "-c", "15", loopDev);
            Assert.Equal("KILN-LOOP-DATA\n", hostRead.Stdout);
            var rdev = KilnProcess.Tool("stat", "-c", "%Hr %Lr", loopDev).Stdout.Trim().Split(' ');
            var img = new ForeignImage();
            var nodes = Tar(w =>
            {
                w.WriteEntry(new PaxTarEntry(TarEntryType.BlockDevice, "rootdisk") { DeviceMajor = major, DeviceMinor = minor, Mode = (UnixFileMode)0x1B6 });
                w.WriteEntry(new PaxTarEntry(TarEntryType.BlockDevice, "loopdisk")
                {
                    DeviceMajor = int.Parse(rdev[0], System.Globalization.CultureInfo.InvariantCulture),
                    DeviceMinor = int.Parse(rdev[1], System.Globalization.CultureInfo.InvariantCulture),
                    Mode = (UnixFileMode)0x1B6,
                });
                w.WriteEntry(new PaxTarEntry(TarEntryType.CharacterDevice, "zero") { DeviceMajor = 1, DeviceMinor = 5, Mode = (UnixFileMode)0x1B6 });
                w.WriteEntry(new PaxTarEntry(TarEntryType.CharacterDevice, "console") { DeviceMajor = 5, DeviceMinor = 1, Mode = (UnixFileMode)0x180 });
            });
            var top = img.Image([BusyboxLayer(), nodes], Packing.Gzip, false);
            img.WriteLayout(_source.Sub("layout"), top, "tiny");
            using var ctx = new TinyContext(
                $"images:\n  imported:\n    from: oci:{_source.Sub("layout")}:tiny\n    steps:\n" +
                "      - run: for n in rootdisk loopdisk zero; do head -c 512 /$n >> /read 2>> /err; done; wc -c < /read > /bytes; test -b /rootdisk -a -c /console && echo kept > /kept\n" +
                "    test:\n" +
                "      file:\n" +
                "        /err: {contains: [\"loopdisk: Permission denied\", \"zero: Permission denied\"]}\n" +
                "        /kept: {exists: true}\n" +
                "      command:\n" +
                "        \"cat /bytes\": {exit-status: 0, stdout-matches: \"^0$\"}\n" +
                "        \"head -c 512 /loopdisk | wc -c\": {exit-status: 0, stdout-matches: \"^0$\", stderr: [Permission denied]}\n");
            var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
            AssertNoCrash(r);
            Assert.True(r.ExitCode == 0, r.All);
            Assert.Equal(0, KilnProcess.Run(_store.Path, "verify").ExitCode);
            // The snapshots that hold such nodes are root's alone on the host.
            Assert.Equal("700", KilnProcess.Tool("stat", "-c", "%a", Path.Combine(_store.Path, "kiln", "snapshots")).Stdout.Trim());
            Leftovers.AssertNone(_store.Path);
        }
        finally
        {
            KilnProcess.Tool("losetup", "--detach", loopDev);
        }
    }

    [Theory]
    [InlineData("oci", null)]
    [InlineData("oci", "zstd")]
    [InlineData("oci-archive", null)]
    public void A_kiln_image_with_device_nodes_copied_by_skopeo_imports(string transport, string? compression)
    {
        // A run step's mknod leaves char devices in its layer, as debootstrap's dev/console and dev/null do.
        using (var ctx = new TinyContext($"images:\n  tiny:\n    from: scratch\n    steps:\n{TinyContext.RootStep}" +
            "      - run: mknod /dev-console c 5 1 && mknod /dev-null c 1 3 && echo made > /made\n"))
        {
            var built = KilnProcess.Run(_store.Path, "build", ctx.Path);
            Assert.True(built.ExitCode == 0, built.All);
        }
        var dest = transport == "oci" ? $"oci:{_source.Sub("other")}:tiny" : $"oci-archive:{_source.Sub("other.tar")}:tiny";
        string[] args = compression is null
            ? ["copy", $"oci:{_store.Path}:tiny", dest]
            : ["copy", "--dest-compress-format", compression, $"oci:{_store.Path}:tiny", dest];
        var copied = KilnProcess.Tool("skopeo", args);
        Assert.True(copied.ExitCode == 0, copied.All);
        using var store = new TempDir("kiln-store");
        using var again = new TinyContext($"images:\n  again:\n    from: {dest}\n    steps:\n      - run: cat /made > /again\n" +
            "    test:\n      file:\n        /again: {contains: [made]}\n");
        var r = KilnProcess.Run(store.Path, "build", again.Path);
        AssertNoCrash(r);
        Assert.True(r.ExitCode == 0, r.All);
    }
}
