using System.Text.Json;
using Kiln.Build.Exporters;
using Kiln.Build.Store;
using Kiln.Oci;

namespace Kiln.Cli.Tests;

/// <summary>A tiny image built by the kiln command, with deletions, an opaque directory, links and owners, exported
/// through the library in every archive format (until <c>kiln export</c> exists).</summary>
public sealed class TinyArchiveFixture : IDisposable
{
    public const string Yaml = "images:\n  tiny:\n    from: scratch\n    steps:\n" + TinyContext.RootStep +
        "      - run: mkdir -p /srv/keep /srv/redo && echo a > /srv/keep/a && echo old > /srv/redo/old && echo gone > /etc/gone" +
        " && echo shared > /srv/shared && ln /srv/shared /srv/hardlink && ln -s keep/a /srv/symlink && chown 1000:1001 /srv/keep/a && chmod 0640 /srv/keep/a\n" +
        "      - run: rm /etc/gone && rm -rf /srv/redo && mkdir /srv/redo && echo new > /srv/redo/new && echo more >> /srv/keep/a\n";

    public TinyArchiveFixture()
    {
        Context = new TinyContext(Yaml);
        Build = KilnProcess.Run(Store.Path, "build", Context.Path);
        if (Build.ExitCode != 0)
        {
            return;
        }
        using var store = KilnStore.Open(Store.Path);
        Manifest = store.Names.TryGetTag("tiny")!;
        foreach (var (name, format, extension) in ExportFormats.All.Where(f => ArchiveExporter.Handles(f.Format)))
        {
            Paths[format] = Export(store, format, Out.Sub("tiny" + extension));
        }
    }

    public TempDir Store { get; } = new("kiln-store");
    public TempDir Out { get; } = new("kiln-export");
    public TinyContext Context { get; }
    public KilnProcess.Result Build { get; }
    public Descriptor? Manifest { get; }
    public Dictionary<ExportFormat, string> Paths { get; } = [];

    public string Export(KilnStore store, ExportFormat format, string path) =>
        ArchiveExporter.ExportAsync(store, new ExportRequest { ImageName = "tiny", Manifest = Manifest!, Format = format, OutputPath = path },
            null, CancellationToken.None).GetAwaiter().GetResult().OutputPath;

    public void Dispose()
    {
        Context.Dispose();
        Out.Dispose();
        Store.Dispose();
    }
}

public sealed class ArchiveExportTests : IClassFixture<TinyArchiveFixture>
{
    private readonly TinyArchiveFixture _f;

    public ArchiveExportTests(TinyArchiveFixture fixture)
    {
        _f = fixture;
        Assert.True(fixture.Build.ExitCode == 0, "building tiny failed:\n" + fixture.Build.All);
    }

    private string Store => _f.Store.Path;

    [Fact]
    public void Skopeo_inspect_accepts_the_oci_archive_with_the_image_digest_and_layers()
    {
        var r = KilnProcess.Tool("skopeo", "inspect", "oci-archive:" + _f.Paths[ExportFormat.OciArchive]);
        Assert.True(r.ExitCode == 0, r.All);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.Equal(StoreReader.ManifestDigest(Store, "tiny"), doc.RootElement.GetProperty("Digest").GetString());
        Assert.Equal(StoreReader.LayerDigests(Store, "tiny"), doc.RootElement.GetProperty("Layers").EnumerateArray().Select(l => l.GetString()!).ToList());
        var tagged = KilnProcess.Tool("skopeo", "inspect", "oci-archive:" + _f.Paths[ExportFormat.OciArchive] + ":tiny");
        Assert.True(tagged.ExitCode == 0, tagged.All);
    }

    [Fact]
    public void Skopeo_inspect_accepts_the_docker_archive_with_the_image_diff_ids()
    {
        var r = KilnProcess.Tool("skopeo", "inspect", "docker-archive:" + _f.Paths[ExportFormat.DockerArchive]);
        Assert.True(r.ExitCode == 0, r.All);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.Equal(DiffIds(Store, "tiny"), doc.RootElement.GetProperty("Layers").EnumerateArray().Select(l => l.GetString()!).ToList());
        var tags = KilnProcess.Tool("skopeo", "list-tags", "docker-archive:" + _f.Paths[ExportFormat.DockerArchive]);
        Assert.True(tags.ExitCode == 0 && tags.Stdout.Contains("\"tiny:latest\"", StringComparison.Ordinal), tags.All + r.Stdout);
        // The OCI layout beside the legacy files is an image layout of its own.
        using var layout = new TempDir("kiln-docker-layout");
        Assert.Equal(0, KilnProcess.Tool("tar", "-xf", _f.Paths[ExportFormat.DockerArchive], "-C", layout.Path).ExitCode);
        var o = KilnProcess.Tool("skopeo", "inspect", $"oci:{layout.Path}:latest");
        Assert.True(o.ExitCode == 0, o.All);
    }

    [Fact]
    public void Podman_load_names_the_docker_archive_as_kiln_does()
    {
        // A storage of its own (vfs: no mounts), so the test leaves no image, lock or event log on the host.
        using var podman = new TempDir("kiln-podman");
        string[] Podman(params string[] args) =>
            ["--root", podman.Sub("root"), "--runroot", podman.Sub("run"), "--tmpdir", podman.Sub("tmp"),
             "--storage-driver", "vfs", "--events-backend", "none", .. args];
        var load = KilnProcess.Tool("podman", Podman("load", "-i", _f.Paths[ExportFormat.DockerArchive]));
        Assert.True(load.ExitCode == 0, load.All);
        Assert.Contains("Loaded image: localhost/tiny:latest", load.Stdout);
        var exists = KilnProcess.Tool("podman", Podman("image", "exists", "localhost/tiny:latest"));
        Assert.True(exists.ExitCode == 0, exists.All + KilnProcess.Tool("podman", Podman("images")).All);
        var id = KilnProcess.Tool("podman", Podman("image", "inspect", "--format", "{{.Id}}", "localhost/tiny:latest"));
        Assert.True(id.ExitCode == 0, id.All);
        Assert.Equal(ConfigDigest(Store, "tiny"), "sha256:" + id.Stdout.Trim());
    }

    [Fact]
    public void The_docker_archive_holds_what_docker_load_reads()
    {
        // No docker engine here: this reads back what `docker load` reads, manifest.json with its paths and names.
        using var work = new TempDir("kiln-docker-load");
        Assert.Equal(0, KilnProcess.Tool("tar", "-xf", _f.Paths[ExportFormat.DockerArchive], "-C", work.Path).ExitCode);
        using var manifest = JsonDocument.Parse(File.ReadAllText(work.Sub("manifest.json")));
        var item = Assert.Single(manifest.RootElement.EnumerateArray());
        Assert.Equal(["tiny:latest"], item.GetProperty("RepoTags").EnumerateArray().Select(t => t.GetString()));
        var config = item.GetProperty("Config").GetString()!;
        Assert.Equal(ConfigDigest(Store, "tiny"), "sha256:" + Path.GetFileName(config));
        var layers = item.GetProperty("Layers").EnumerateArray().Select(l => l.GetString()!).ToList();
        Assert.Equal(StoreReader.LayerDigests(Store, "tiny").Select(d => "blobs/sha256/" + d["sha256:".Length..]), layers);
        Assert.All(layers.Append(config), p => Assert.True(File.Exists(work.Sub(p)), p + " is missing"));
        // docker load checks each layer, decompressed, against the config's diff IDs, in order.
        var diffIds = layers.Select(l => "sha256:" + KilnProcess.Tool("sh", "-c", $"gzip -dc '{work.Sub(l)}' | sha256sum").Stdout[..64]).ToList();
        Assert.Equal(DiffIds(Store, "tiny"), diffIds);
    }

    [Fact]
    public void Umoci_unpacks_the_oci_archive_to_the_same_tree_as_the_image_and_the_rootfs_export()
    {
        var image = TreeListing.OfImage(Store, "tiny");
        Assert.Contains(image, l => l.StartsWith("srv/redo/new\t", StringComparison.Ordinal));
        Assert.DoesNotContain(image, l => l.StartsWith("srv/redo/old\t", StringComparison.Ordinal) || l.StartsWith("etc/gone\t", StringComparison.Ordinal));
        Assert.Contains(image, l => l.StartsWith("srv/keep/a\tf\t640\t1000\t1001\t", StringComparison.Ordinal));

        using var work = new TempDir("kiln-umoci");
        Directory.CreateDirectory(work.Sub("layout"));
        Assert.Equal(0, KilnProcess.Tool("tar", "-xf", _f.Paths[ExportFormat.OciArchive], "-C", work.Sub("layout")).ExitCode);
        var u = KilnProcess.Tool("umoci", "unpack", "--image", work.Sub("layout") + ":tiny", work.Sub("bundle"));
        Assert.True(u.ExitCode == 0, u.All);
        TreeListing.AssertSame(image, TreeListing.Of(work.Sub("bundle/rootfs")));

        Directory.CreateDirectory(work.Sub("rootfs"));
        var x = KilnProcess.Tool("tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf", _f.Paths[ExportFormat.Rootfs], "-C", work.Sub("rootfs"));
        Assert.True(x.ExitCode == 0, x.All);
        TreeListing.AssertSame(image, TreeListing.Of(work.Sub("rootfs")));
    }

    [Fact]
    public void Exports_of_a_built_image_are_byte_identical_each_time()
    {
        using var store = KilnStore.Open(Store);
        foreach (var (format, path) in _f.Paths)
        {
            var again = _f.Export(store, format, _f.Out.Sub("again-" + Path.GetFileName(path)));
            Assert.True(File.ReadAllBytes(path).AsSpan().SequenceEqual(File.ReadAllBytes(again)), $"{format} differs");
        }
    }

    [Fact]
    public void An_image_built_from_the_oci_archive_has_the_same_layers_diff_ids_and_manifest()
    {
        using var ctx = new TinyContext("images:\n  back:\n    from: oci-archive:archives/tiny.oci.tar\n");
        Directory.CreateDirectory(Path.Combine(ctx.Path, "archives"));
        File.Copy(_f.Paths[ExportFormat.OciArchive], Path.Combine(ctx.Path, "archives", "tiny.oci.tar"));
        using var other = new TempDir("kiln-store");
        var r = KilnProcess.Run(other.Path, "build", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);

        Assert.Equal(StoreReader.LayerDigests(Store, "tiny"), StoreReader.LayerDigests(other.Path, "back"));
        Assert.Equal(DiffIds(Store, "tiny"), DiffIds(other.Path, "back"));
        Assert.Equal(StoreReader.ManifestDigest(Store, "tiny"), StoreReader.ManifestDigest(other.Path, "back"));
        TreeListing.AssertSame(TreeListing.OfImage(Store, "tiny"), TreeListing.OfImage(other.Path, "back"));

        var again = KilnProcess.Run(other.Path, "build", ctx.Path);
        Assert.True(again.ExitCode == 0, again.All);
        Assert.Equal(StoreReader.ManifestDigest(other.Path, "back"), StoreReader.ManifestDigest(Store, "tiny"));
        Leftovers.AssertNone(other.Path);
    }

    [Fact]
    public void A_missing_archive_is_bad_input_that_names_the_file()
    {
        using var ctx = new TinyContext("images:\n  back:\n    from: oci-archive:nowhere.tar\n");
        using var other = new TempDir("kiln-store");
        var r = KilnProcess.Run(other.Path, "build", ctx.Path);
        Assert.True(r.ExitCode == 2, r.All);
        Assert.Contains(Path.Combine(ctx.Path, "nowhere.tar"), r.Stderr);
        Assert.Contains("kiln.yaml:3:", r.Stderr);
    }

    [Fact]
    public void A_file_that_is_not_an_archive_is_bad_input_that_names_the_file()
    {
        using var ctx = new TinyContext("images:\n  back:\n    from: oci-archive:kiln.yaml\n");
        using var other = new TempDir("kiln-store");
        var r = KilnProcess.Run(other.Path, "build", ctx.Path);
        Assert.True(r.ExitCode == 2, r.All);
        Assert.Contains(ctx.Yaml + ": not a tar archive", r.Stderr);

        // A tar, but not of an image layout (the rootfs export).
        File.Copy(_f.Paths[ExportFormat.Rootfs], Path.Combine(ctx.Path, "rootfs.tar"));
        ctx.Write("kiln.yaml", "images:\n  back:\n    from: oci-archive:rootfs.tar\n");
        var r2 = KilnProcess.Run(other.Path, "build", ctx.Path);
        Assert.True(r2.ExitCode == 2, r2.All);
        Assert.Contains("rootfs.tar: not an oci-archive", r2.Stderr);
    }

    [Fact]
    public void An_archive_of_several_images_needs_a_tag()
    {
        // The store is an image layout; a tar of it holds every tagged image.
        using var two = new TempDir("kiln-store");
        using (var ctx = new TinyContext("images:\n  one:\n    from: scratch\n    steps:\n" + TinyContext.RootStep +
            "  two:\n    from: one\n    steps:\n      - run: echo two > /two\n"))
        {
            var b = KilnProcess.Run(two.Path, "build", ctx.Path);
            Assert.True(b.ExitCode == 0, b.All);
        }
        using var ctx2 = new TinyContext("images:\n  back:\n    from: oci-archive:both.tar\n");
        var tar = KilnProcess.Tool("tar", "-cf", Path.Combine(ctx2.Path, "both.tar"), "-C", two.Path, "oci-layout", "index.json", "blobs");
        Assert.True(tar.ExitCode == 0, tar.All);
        using var other = new TempDir("kiln-store");

        var r = KilnProcess.Run(other.Path, "build", ctx2.Path);
        Assert.True(r.ExitCode == 2, r.All);
        Assert.Contains("both.tar: holds 2 images", r.Stderr);
        Assert.Contains("one, two", r.Stderr);

        ctx2.Write("kiln.yaml", "images:\n  back:\n    from: oci-archive:both.tar:two\n");
        var ok = KilnProcess.Run(other.Path, "build", ctx2.Path);
        Assert.True(ok.ExitCode == 0, ok.All);
        Assert.Equal(StoreReader.ManifestDigest(two.Path, "two"), StoreReader.ManifestDigest(other.Path, "back"));
    }

    [Fact]
    public void An_archive_with_a_corrupt_layer_fails_the_build_and_leaves_nothing_in_the_store()
    {
        using var work = new TempDir("kiln-corrupt");
        Assert.Equal(0, KilnProcess.Tool("tar", "-xf", _f.Paths[ExportFormat.OciArchive], "-C", work.Path).ExitCode);
        var layer = StoreReader.BlobPath(work.Path, StoreReader.LayerDigests(Store, "tiny")[1]);
        var bytes = File.ReadAllBytes(layer);
        bytes[bytes.Length / 2] ^= 0xFF;
        File.WriteAllBytes(layer, bytes);
        using var ctx = new TinyContext("images:\n  back:\n    from: oci-archive:bad.tar\n");
        var tar = KilnProcess.Tool("tar", "-cf", Path.Combine(ctx.Path, "bad.tar"), "-C", work.Path, "oci-layout", "index.json", "blobs");
        Assert.True(tar.ExitCode == 0, tar.All);
        using var other = new TempDir("kiln-store");

        var r = KilnProcess.Run(other.Path, "build", ctx.Path);
        Assert.True(r.ExitCode == 1, r.All);
        Assert.Contains("layer 2 does not match its descriptor", r.Stderr);
        Assert.Contains("bad.tar", r.Stderr);
        var blobs = Path.Combine(other.Path, "blobs", "sha256");
        Assert.True(!Directory.Exists(blobs) || Directory.GetFiles(blobs).Length == 0, "nothing lands in blobs/");
        Leftovers.AssertNone(other.Path);
    }

    private static string ConfigDigest(string store, string name)
    {
        using var manifest = JsonDocument.Parse(File.ReadAllText(StoreReader.BlobPath(store, StoreReader.ManifestDigest(store, name))));
        return manifest.RootElement.GetProperty("config").GetProperty("digest").GetString()!;
    }

    private static List<string> DiffIds(string store, string name)
    {
        using var manifest = JsonDocument.Parse(File.ReadAllText(StoreReader.BlobPath(store, StoreReader.ManifestDigest(store, name))));
        var config = manifest.RootElement.GetProperty("config").GetProperty("digest").GetString()!;
        using var doc = JsonDocument.Parse(File.ReadAllText(StoreReader.BlobPath(store, config)));
        return [.. doc.RootElement.GetProperty("rootfs").GetProperty("diff_ids").EnumerateArray().Select(d => d.GetString()!)];
    }
}
