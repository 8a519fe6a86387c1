using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace Kiln.Cli.Tests;

/// <summary>Images as other tools write them, made by hand: layers as plain, gzip or zstd tars under OCI or Docker
/// media types, configs with or without their optional fields, manifests, indexes (nested too), written out as an
/// OCI image layout or an oci-archive.</summary>
public sealed class ForeignImage
{
    public enum Packing { Tar, Gzip, Zstd }

    public const string OciManifest = "application/vnd.oci.image.manifest.v1+json";
    public const string OciIndex = "application/vnd.oci.image.index.v1+json";
    public const string DockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
    public const string DockerList = "application/vnd.docker.distribution.manifest.list.v2+json";

    private readonly Dictionary<string, byte[]> _blobs = [];

    public static string Sha(byte[] b) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(b));

    /// <summary>A tar of <paramref name="write"/>'s entries.</summary>
    public static byte[] Tar(Action<TarWriter> write)
    {
        var tar = new MemoryStream();
        using (var w = new TarWriter(tar, TarEntryFormat.Pax, leaveOpen: true))
        {
            write(w);
        }
        return tar.ToArray();
    }

    /// <summary>A busybox root: /bin/busybox, /bin/sh, and the dirs a sandbox mounts on.</summary>
    public static byte[] BusyboxLayer() => Tar(w =>
    {
        foreach (var d in new[] { "bin", "tmp", "etc", "proc", "sys", "dev" })
        {
            w.WriteEntry(new PaxTarEntry(TarEntryType.Directory, d + "/") { Mode = (UnixFileMode)0x1ED });
        }
        w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, "bin/busybox")
        {
            DataStream = new MemoryStream(File.ReadAllBytes("/bin/busybox")),
            Mode = (UnixFileMode)0x1ED,
        });
        w.WriteEntry(new PaxTarEntry(TarEntryType.SymbolicLink, "bin/sh") { LinkName = "busybox" });
    });

    public static byte[] FileLayer(string name, string content) => Tar(w =>
        w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name)
        {
            DataStream = new MemoryStream(Encoding.UTF8.GetBytes(content)),
            Mode = (UnixFileMode)0x1A4,
        }));

    public JsonObject Blob(byte[] bytes, string mediaType)
    {
        var digest = Sha(bytes);
        _blobs[digest] = bytes;
        return new JsonObject { ["mediaType"] = mediaType, ["digest"] = digest, ["size"] = bytes.Length };
    }

    private JsonObject Json(JsonNode json, string mediaType) => Blob(Encoding.UTF8.GetBytes(json.ToJsonString()), mediaType);

    public static string LayerType(Packing packing, bool docker) => (packing, docker) switch
    {
        (Packing.Tar, false) => "application/vnd.oci.image.layer.v1.tar",
        (Packing.Gzip, false) => "application/vnd.oci.image.layer.v1.tar+gzip",
        (Packing.Zstd, false) => "application/vnd.oci.image.layer.v1.tar+zstd",
        (Packing.Tar, true) => "application/vnd.docker.image.rootfs.diff.tar",
        (Packing.Gzip, true) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        _ => "application/vnd.docker.image.rootfs.diff.tar.zstd",
    };

    public static byte[] Pack(byte[] tar, Packing packing)
    {
        switch (packing)
        {
            case Packing.Gzip:
                var gz = new MemoryStream();
                using (var z = new GZipStream(gz, CompressionLevel.Fastest, leaveOpen: true))
                {
                    z.Write(tar);
                }
                return gz.ToArray();
            case Packing.Zstd:
                using (var c = new ZstdSharp.Compressor(3))
                {
                    return c.Wrap(tar).ToArray();
                }
            default:
                return tar;
        }
    }

    /// <summary>An image of <paramref name="layerTars"/>; returns its manifest's descriptor.</summary>
    /// <param name="configExtra">Members added to the config (or replacing the minimal one's): null keeps the config
    /// to what the spec requires (architecture, os, rootfs).</param>
    public JsonObject Image(IReadOnlyList<byte[]> layerTars, Packing packing, bool docker, string arch = "amd64",
        string? variant = null, JsonObject? configExtra = null)
    {
        var layers = new JsonArray();
        var diffIds = new JsonArray();
        foreach (var tar in layerTars)
        {
            layers.Add(Blob(Pack(tar, packing), LayerType(packing, docker)));
            diffIds.Add(Sha(tar));
        }
        var config = new JsonObject
        {
            ["architecture"] = arch,
            ["os"] = "linux",
            ["rootfs"] = new JsonObject { ["type"] = "layers", ["diff_ids"] = diffIds },
        };
        if (variant is not null)
        {
            config["variant"] = variant;
        }
        foreach (var (k, v) in configExtra ?? [])
        {
            config[k] = v?.DeepClone();
        }
        var configDesc = Json(config, docker ? "application/vnd.docker.container.image.v1+json" : "application/vnd.oci.image.config.v1+json");
        var mediaType = docker ? DockerManifest : OciManifest;
        var manifest = new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = mediaType,
            ["config"] = configDesc,
            ["layers"] = layers,
        };
        var desc = Json(manifest, mediaType);
        desc["platform"] = Platform(arch, variant);
        return desc;
    }

    public static JsonObject Platform(string arch, string? variant = null)
    {
        var p = new JsonObject { ["architecture"] = arch, ["os"] = "linux" };
        if (variant is not null)
        {
            p["variant"] = variant;
        }
        return p;
    }

    /// <summary>An index (or Docker manifest list) of <paramref name="entries"/>; returns its descriptor.</summary>
    public JsonObject Index(bool docker, params JsonObject[] entries)
    {
        var mediaType = docker ? DockerList : OciIndex;
        var index = new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = mediaType,
            ["manifests"] = new JsonArray([.. entries.Select(e => (JsonNode)e.DeepClone())]),
        };
        return Json(index, mediaType);
    }

    private Dictionary<string, byte[]> LayoutFiles(JsonObject top, string tag)
    {
        var entry = (JsonObject)top.DeepClone();
        entry.Remove("platform");
        entry["annotations"] = new JsonObject { ["org.opencontainers.image.ref.name"] = tag };
        var index = new JsonObject { ["schemaVersion"] = 2, ["manifests"] = new JsonArray(entry) };
        var files = new Dictionary<string, byte[]>
        {
            ["oci-layout"] = """{"imageLayoutVersion":"1.0.0"}"""u8.ToArray(),
            ["index.json"] = Encoding.UTF8.GetBytes(index.ToJsonString()),
        };
        foreach (var (digest, bytes) in _blobs)
        {
            files["blobs/sha256/" + digest["sha256:".Length..]] = bytes;
        }
        return files;
    }

    /// <summary>An OCI image layout in <paramref name="dir"/> whose index.json tags <paramref name="top"/>.</summary>
    public void WriteLayout(string dir, JsonObject top, string tag)
    {
        foreach (var (name, bytes) in LayoutFiles(top, tag))
        {
            var path = Path.Combine(dir, name);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, bytes);
        }
    }

    /// <summary>The same layout as an oci-archive (a tar of it).</summary>
    public void WriteArchive(string file, JsonObject top, string tag)
    {
        using var stream = File.Create(file);
        using var w = new TarWriter(stream, TarEntryFormat.Pax);
        foreach (var (name, bytes) in LayoutFiles(top, tag))
        {
            w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(bytes) });
        }
    }
}
