using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text.Json.Nodes;

namespace Kiln.Oci.Tests.Archives;

/// <summary>A docker-archive as <c>docker save</c> wrote it before Docker 25 (and <c>podman save --format
/// docker-archive</c> still does): <c>manifest.json</c> and <c>repositories</c>, a config file <c>HEX.json</c>, and each
/// layer as <c>ID/layer.tar</c>; no OCI layout. A layer seen before is written as a symbolic link to the first one,
/// as Docker does.</summary>
public static class DockerSaveArchive
{
    /// <summary>One image: its RepoTags, config JSON and layer files (as they go in the tar: plain or compressed).</summary>
    public sealed record Entry(string[] RepoTags, byte[] Config, byte[][] Layers);

    public static string Hex(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    /// <summary>A minimal config for <paramref name="layerTars"/> (the uncompressed tars, whose digests are the diff IDs).</summary>
    public static byte[] Config(params byte[][] layerTars) => System.Text.Encoding.UTF8.GetBytes(new JsonObject
    {
        ["architecture"] = "amd64",
        ["os"] = "linux",
        ["rootfs"] = new JsonObject { ["type"] = "layers", ["diff_ids"] = new JsonArray([.. layerTars.Select(t => (JsonNode)("sha256:" + Hex(t)))]) },
    }.ToJsonString());

    public static void Write(string path, params Entry[] images)
    {
        using var file = File.Create(path);
        using var tar = new TarWriter(file, TarEntryFormat.Pax);
        void Add(string name, byte[] data) => tar.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(data) });
        var written = new Dictionary<string, string>();
        var manifest = new JsonArray();
        var repositories = new JsonObject();
        foreach (var image in images)
        {
            string config = Hex(image.Config) + ".json";
            if (!written.ContainsKey(config))
            {
                Add(config, image.Config);
                written[config] = config;
            }
            var layers = new JsonArray();
            string parent = "";
            foreach (var layer in image.Layers)
            {
                // The v1 id of a layer depends on its parents, so a shared layer under another parent gets another
                // folder: Docker links its layer.tar to the first copy.
                string id = Hex(System.Text.Encoding.UTF8.GetBytes(parent + Hex(layer)));
                parent = id;
                string name = id + "/layer.tar";
                if (!written.ContainsKey(name))
                {
                    tar.WriteEntry(new PaxTarEntry(TarEntryType.Directory, id + "/"));
                    Add(id + "/VERSION", "1.0"u8.ToArray());
                    if (written.TryGetValue("layer:" + Hex(layer), out var first))
                    {
                        tar.WriteEntry(new PaxTarEntry(TarEntryType.SymbolicLink, name) { LinkName = "../" + first });
                    }
                    else
                    {
                        Add(name, layer);
                        written["layer:" + Hex(layer)] = name;
                    }
                    written[name] = name;
                }
                layers.Add(name);
            }
            manifest.Add(new JsonObject { ["Config"] = config, ["RepoTags"] = new JsonArray([.. image.RepoTags.Select(t => (JsonNode)t)]), ["Layers"] = layers });
            foreach (var tag in image.RepoTags)
            {
                int colon = tag.LastIndexOf(':');
                var repo = (JsonObject)(repositories[tag[..colon]] ??= new JsonObject());
                repo[tag[(colon + 1)..]] = parent;
            }
        }
        Add("manifest.json", System.Text.Encoding.UTF8.GetBytes(manifest.ToJsonString()));
        Add("repositories", System.Text.Encoding.UTF8.GetBytes(repositories.ToJsonString()));
    }
}
