using System.Formats.Tar;
using System.IO.Compression;
using System.Text.Json;

namespace Kiln.Cli.Tests;

/// <summary>Reads an image of a store the way an outside tool would: index.json, manifest, layer tars.</summary>
public static class StoreReader
{
    public static string ManifestDigest(string store, string name)
    {
        using var index = JsonDocument.Parse(File.ReadAllText(Path.Combine(store, "index.json")));
        foreach (var m in index.RootElement.GetProperty("manifests").EnumerateArray())
        {
            if (m.TryGetProperty("annotations", out var a) && a.TryGetProperty("org.opencontainers.image.ref.name", out var n) && n.GetString() == name)
            {
                return m.GetProperty("digest").GetString()!;
            }
        }
        throw new InvalidOperationException($"no image {name} in {store}");
    }

    /// <summary>The diff IDs (hex, as snapshot dirs are named) of image <paramref name="name"/>'s layers, bottom first.</summary>
    public static IReadOnlyList<string> DiffIds(string store, string name)
    {
        using var manifest = System.Text.Json.JsonDocument.Parse(File.ReadAllText(BlobPath(store, ManifestDigest(store, name))));
        var config = manifest.RootElement.GetProperty("config").GetProperty("digest").GetString()!;
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(BlobPath(store, config)));
        return [.. doc.RootElement.GetProperty("rootfs").GetProperty("diff_ids").EnumerateArray().Select(d => d.GetString()!["sha256:".Length..])];
    }

    public static string BlobPath(string store, string digest) => Path.Combine(store, "blobs", "sha256", digest["sha256:".Length..]);

    public static IReadOnlyList<string> LayerDigests(string store, string name)
    {
        using var manifest = JsonDocument.Parse(File.ReadAllText(BlobPath(store, ManifestDigest(store, name))));
        return [.. manifest.RootElement.GetProperty("layers").EnumerateArray().Select(l => l.GetProperty("digest").GetString()!)];
    }

    /// <summary>Entry names of a gzip layer, in order.</summary>
    public static IReadOnlyList<string> LayerEntries(string store, string layerDigest)
    {
        using var file = File.OpenRead(BlobPath(store, layerDigest));
        using var gz = new GZipStream(file, CompressionMode.Decompress);
        using var tar = new TarReader(gz);
        var names = new List<string>();
        while (tar.GetNextEntry() is { } e)
        {
            names.Add(e.Name);
        }
        return names;
    }
}
