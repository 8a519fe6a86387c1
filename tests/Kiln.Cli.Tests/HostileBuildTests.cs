using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text.Json.Nodes;

namespace Kiln.Cli.Tests;

/// <summary>Hostile inputs through the kiln command (issue 5): tampered OCI layouts, kernel-filesystem working
/// directories, cache paths that climb, copies aimed at the host's /etc. Every case checks that nothing lands in
/// the store's blobs and that sentinels outside stay as they were.</summary>
public sealed class HostileBuildTests : IDisposable
{
    private readonly TempDir _store = new("kiln-store");

    public void Dispose() => _store.Dispose();

    private static string Image(string steps, string name = "tiny") =>
        $"images:\n  {name}:\n    from: scratch\n    steps:\n{TinyContext.RootStep}{steps}";

    /// <summary>Builds a tiny image into a store of its own and returns that store as an OCI layout.</summary>
    private static TempDir SourceLayout()
    {
        var layout = new TempDir("kiln-layout");
        using var ctx = new TinyContext(Image("      - run: echo hi > /etc/hi\n"));
        var r = KilnProcess.Run(layout.Path, "build", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
        return layout;
    }

    private static string Sha(byte[] b) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(b));

    private static JsonObject ReadBlob(string layout, string digest) =>
        JsonNode.Parse(File.ReadAllText(StoreReader.BlobPath(layout, digest)))!.AsObject();

    private static (string Digest, long Size) WriteBlob(string layout, JsonNode json)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(json.ToJsonString());
        var digest = Sha(bytes);
        File.WriteAllBytes(StoreReader.BlobPath(layout, digest), bytes);
        return (digest, bytes.Length);
    }

    /// <summary>Rewrites the manifest of <c>tiny</c> (and index.json) after <paramref name="change"/>.</summary>
    private static void EditManifest(string layout, Action<JsonObject> change)
    {
        var index = JsonNode.Parse(File.ReadAllText(Path.Combine(layout, "index.json")))!.AsObject();
        var entry = index["manifests"]!.AsArray().Single(m => m!["annotations"]?["org.opencontainers.image.ref.name"]?.GetValue<string>() == "tiny")!;
        var manifest = ReadBlob(layout, entry["digest"]!.GetValue<string>());
        change(manifest);
        var (digest, size) = WriteBlob(layout, manifest);
        entry["digest"] = digest;
        entry["size"] = size;
        File.WriteAllText(Path.Combine(layout, "index.json"), index.ToJsonString());
    }

    private void AssertImportRefused(string layout, string mentioned, int exitCode = 1)
    {
        using var ctx = new TinyContext($"images:\n  imported:\n    from: oci:{layout}:tiny\n    steps:\n      - run: echo x > /x\n");
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.True(r.ExitCode == exitCode, r.All);
        Assert.Contains(mentioned, r.Stderr);
        var blobs = Path.Combine(_store.Path, "blobs", "sha256");
        Assert.True(!Directory.Exists(blobs) || Directory.GetFiles(blobs).Length == 0,
            "nothing lands in blobs/: " + string.Join(", ", Directory.Exists(blobs) ? Directory.GetFiles(blobs) : []));
        var snapshots = Path.Combine(_store.Path, "kiln", "snapshots");
        Assert.True(!Directory.Exists(snapshots) || Directory.GetFileSystemEntries(snapshots).Length == 0, "no snapshot is kept");
        Leftovers.AssertNone(_store.Path);
    }

    [Fact]
    public void Importing_an_image_whose_layer_bytes_do_not_match_its_digest_is_refused_and_leaves_nothing()
    {
        using var layout = SourceLayout();
        var layer = StoreReader.BlobPath(layout.Path, StoreReader.LayerDigests(layout.Path, "tiny")[1]);
        var bytes = File.ReadAllBytes(layer);
        bytes[^1] ^= 0xFF; // same size, other bytes
        File.WriteAllBytes(layer, bytes);
        AssertImportRefused(layout.Path, "does not match its descriptor");
    }

    [Fact]
    public void Importing_an_image_whose_layer_size_does_not_match_its_descriptor_is_refused_and_leaves_nothing()
    {
        using var layout = SourceLayout();
        EditManifest(layout.Path, m => m["layers"]![1]!["size"] = m["layers"]![1]!["size"]!.GetValue<long>() + 1);
        AssertImportRefused(layout.Path, "its descriptor says");
    }

    [Fact]
    public void Importing_an_image_whose_config_diff_ids_do_not_match_its_layers_is_refused_and_leaves_nothing()
    {
        using var layout = SourceLayout();
        EditManifest(layout.Path, m =>
        {
            var config = ReadBlob(layout.Path, m["config"]!["digest"]!.GetValue<string>());
            var ids = config["rootfs"]!["diff_ids"]!.AsArray();
            (ids[0], ids[1]) = (ids[1]!.GetValue<string>(), ids[0]!.GetValue<string>());
            var (digest, size) = WriteBlob(layout.Path, config);
            m["config"]!["digest"] = digest;
            m["config"]!["size"] = size;
        });
        AssertImportRefused(layout.Path, "but the config says");
    }

    [Theory]
    [InlineData("sha256:../../../../etc/passwd")]
    [InlineData("sha256:abc")]
    [InlineData("SHA256:0000000000000000000000000000000000000000000000000000000000000000")]
    [InlineData("md5:00000000000000000000000000000000")]
    public void Importing_a_layout_with_a_malformed_digest_is_refused_before_any_path_is_built(string digest)
    {
        using var layout = SourceLayout();
        var index = Path.Combine(layout.Path, "index.json");
        var json = JsonNode.Parse(File.ReadAllText(index))!;
        json["manifests"]![0]!["digest"] = digest;
        File.WriteAllText(index, json.ToJsonString());
        // The layout's index is read while planning: a problem there is the definition's (exit 2, file and line),
        // as the same index in an oci-archive is.
        AssertImportRefused(layout.Path, "invalid digest", exitCode: 2);
    }

    /// <summary>An OCI layout with one gzip layer made of <paramref name="write"/>'s entries, tagged <c>tiny</c>.</summary>
    private static TempDir HandMadeLayout(Action<TarWriter> write)
    {
        var layout = new TempDir("kiln-layout");
        Directory.CreateDirectory(Path.Combine(layout.Path, "blobs", "sha256"));
        var tar = new MemoryStream();
        using (var w = new TarWriter(tar, TarEntryFormat.Pax, leaveOpen: true))
        {
            write(w);
        }
        var gz = new MemoryStream();
        using (var z = new GZipStream(gz, CompressionLevel.Fastest, leaveOpen: true))
        {
            z.Write(tar.ToArray());
        }
        var layer = gz.ToArray();
        File.WriteAllBytes(StoreReader.BlobPath(layout.Path, Sha(layer)), layer);
        var config = JsonNode.Parse($$$"""{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["{{{Sha(tar.ToArray())}}}"]},"config":{}}""")!;
        var (configDigest, configSize) = WriteBlob(layout.Path, config);
        var manifest = JsonNode.Parse($$$"""{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{{{configDigest}}}","size":{{{configSize}}}},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{{{Sha(layer)}}}","size":{{{layer.Length}}}}]}""")!;
        var (manifestDigest, manifestSize) = WriteBlob(layout.Path, manifest);
        File.WriteAllText(Path.Combine(layout.Path, "oci-layout"), """{"imageLayoutVersion":"1.0.0"}""");
        File.WriteAllText(Path.Combine(layout.Path, "index.json"), $$$"""{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{{{manifestDigest}}}","size":{{{manifestSize}}},"annotations":{"org.opencontainers.image.ref.name":"tiny"}}]}""");
        return layout;
    }

    private static void File_(TarWriter w, string name) =>
        w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream("evil"u8.ToArray()) });

    [Theory]
    [InlineData("dotdot", "has a '..' component")]
    [InlineData("absolute", "absolute name")]
    [InlineData("through-symlink", "is a symlink")]
    [InlineData("whiteout-device", "whiteout in disguise")]
    [InlineData("hardlink-out", "layer entry 'hl'")]
    public void Importing_a_hostile_layer_is_refused_and_nothing_lands_anywhere(string kind, string mentioned)
    {
        using var outside = new TempDir("kiln-outside");
        var sentinel = Path.Combine(outside.Path, "sentinel");
        File.WriteAllText(sentinel, "untouched");
        using var layout = HandMadeLayout(w =>
        {
            File_(w, "ok");
            switch (kind)
            {
                case "dotdot": File_(w, "a/../../../../../../.." + sentinel); break;
                case "absolute": File_(w, sentinel); break;
                case "through-symlink":
                    w.WriteEntry(new PaxTarEntry(TarEntryType.SymbolicLink, "out") { LinkName = outside.Path });
                    File_(w, "out/sentinel");
                    break;
                case "whiteout-device": w.WriteEntry(new PaxTarEntry(TarEntryType.CharacterDevice, "etc")); break;
                case "hardlink-out": w.WriteEntry(new PaxTarEntry(TarEntryType.HardLink, "hl") { LinkName = sentinel }); break;
            }
        });
        AssertImportRefused(layout.Path, mentioned);
        Assert.Equal("untouched", File.ReadAllText(sentinel));
        Assert.Equal(["sentinel"], Directory.GetFileSystemEntries(outside.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void An_untampered_layout_imports_and_builds()
    {
        using var layout = SourceLayout();
        using var ctx = new TinyContext($"images:\n  imported:\n    from: oci:{layout.Path}:tiny\n    steps:\n      - run: cat /etc/hi > /x\n");
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
        Assert.Equal(0, KilnProcess.Run(_store.Path, "verify").ExitCode);
        Leftovers.AssertNone(_store.Path);
    }

    [Theory]
    [InlineData("/proc/self/fd/3")]
    [InlineData("/proc/self/cwd")]
    [InlineData("/dev/fd/0")]
    [InlineData("/fdlink")]
    public void A_run_step_with_a_working_directory_under_proc_or_dev_is_refused(string workdir)
    {
        using var ctx = new TinyContext(Image(
            "      - run: ln -s /proc/self/fd/3 /fdlink\n" +
            $"      - workdir: {workdir}\n" +
            "      - run: touch escaped-by-kiln-test && ls /\n"));
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.True(r.ExitCode == 1, r.All);
        Assert.Contains("working directory", r.Stderr);
        Assert.Empty(Directory.GetFiles("/", "escaped-by-kiln-test"));
        Leftovers.AssertNone(_store.Path);
    }

    [Theory]
    [InlineData("/var/cache/../../etc")]
    [InlineData("../../etc")]
    [InlineData("cache")]
    public void Cache_paths_that_climb_out_or_are_relative_are_refused(string cache)
    {
        using var ctx = new TinyContext(Image($"      - run: touch /c/escaped\n        cache: [\"{cache}\"]\n"));
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.True(r.ExitCode == 2, r.All);
        Assert.Contains("cache", r.Stderr);
        Assert.False(Directory.Exists(Path.Combine(_store.Path, "kiln", "cache", "run")));
    }

    [Fact]
    public void A_cache_mount_lives_under_the_cache_root_and_stays_out_of_the_layer()
    {
        using var ctx = new TinyContext(Image("      - run: echo kept > /var/cache/app/file && touch /made\n        cache: [/var/cache/app]\n"));
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
        var run = Path.Combine(_store.Path, "kiln", "cache", "run");
        var file = Assert.Single(Directory.GetFiles(run, "file", SearchOption.AllDirectories));
        Assert.Equal("kept\n", File.ReadAllText(file));
        var entries = StoreReader.LayerEntries(_store.Path, StoreReader.LayerDigests(_store.Path, "tiny")[^1]);
        Assert.DoesNotContain(entries, e => e.Contains("var/cache/app/file", StringComparison.Ordinal));
    }

    [Fact]
    public void A_copy_into_a_directory_whose_parent_is_a_symlink_to_etc_lands_in_the_images_etc()
    {
        using var ctx = new TinyContext(Image(
            "      - run: ln -s /etc /conf\n" +
            "      - copy: evil.conf\n        to: /conf/kiln-hostile-test.conf\n"));
        ctx.Write("evil.conf", "evil\n");
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
        Assert.False(File.Exists("/etc/kiln-hostile-test.conf"));
        var entries = StoreReader.LayerEntries(_store.Path, StoreReader.LayerDigests(_store.Path, "tiny")[^1]);
        Assert.Contains("etc/kiln-hostile-test.conf", entries);
    }
}
