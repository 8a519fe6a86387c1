using Kiln.Build.Definition;
using Kiln.Build.Layers;
using Kiln.Build.Store;
using Kiln.Oci;

namespace Kiln.Build.Execution;

/// <summary><c>from: oci:PATH[:TAG]</c>: copies an image out of another OCI image layout into the store,
/// checking every digest, and extracts its layers as snapshots.</summary>
internal static class OciImport
{
    /// <summary>The manifest digest the tag names, for the plan's base key.</summary>
    public static string Identity(OciLayoutSource source) => FindManifest(source).Digest.Value;

    public static async Task<ImageState> ImportAsync(KilnStore store, OciLayoutSource source, BuildOptions options, CancellationToken ct)
    {
        var desc = FindManifest(source);
        var manifestBytes = await CopyBlobAsync(store, source, desc, ct).ConfigureAwait(false);
        var manifest = OciJson.DeserializeManifest(manifestBytes);
        var configBytes = await CopyBlobAsync(store, source, manifest.Config, ct).ConfigureAwait(false);
        var config = OciJson.DeserializeConfig(configBytes);
        if (config.RootFs.DiffIds.Count != manifest.Layers.Count)
        {
            throw new BuildException($"oci:{source.LayoutPath}:{source.Tag}: the config lists {config.RootFs.DiffIds.Count} diff IDs for {manifest.Layers.Count} layers");
        }
        for (int i = 0; i < manifest.Layers.Count; i++)
        {
            var layer = manifest.Layers[i];
            if (!MediaTypes.IsLayer(layer.MediaType))
            {
                throw new BuildException($"oci:{source.LayoutPath}:{source.Tag}: layer {i + 1} has unsupported media type '{layer.MediaType}'");
            }
            await CopyBlobAsync(store, source, layer, ct).ConfigureAwait(false);
            var diffId = config.RootFs.DiffIds[i];
            if (store.HasSnapshot(diffId))
            {
                continue;
            }
            var work = store.CreateTempDir("import");
            try
            {
                var target = Path.Combine(work, "snapshot");
                Digest actual;
                await using (var blob = store.OpenBlob(layer.Digest))
                {
                    actual = await LayerExtractor.ExtractAsync(blob, layer.MediaType, target, ct).ConfigureAwait(false);
                }
                if (actual != diffId)
                {
                    throw new BuildException($"oci:{source.LayoutPath}:{source.Tag}: layer {i + 1} unpacks to {actual}, but the config says {diffId}");
                }
                store.CommitSnapshot(target, diffId);
            }
            finally
            {
                store.DeleteTempDir(work);
            }
        }
        return new ImageState { Layers = manifest.Layers, Config = config };
    }

    private static Descriptor FindManifest(OciLayoutSource source)
    {
        var indexPath = Path.Combine(source.LayoutPath, "index.json");
        if (!File.Exists(indexPath))
        {
            throw new BuildException($"oci:{source.LayoutPath}: not an OCI image layout (no index.json)");
        }
        var index = OciJson.DeserializeIndex(File.ReadAllBytes(indexPath));
        var matches = index.Manifests.Where(m => m.Annotations is { } a && a.TryGetValue(Annotations.RefName, out var n) && n == source.Tag).ToList();
        if (matches.Count == 0)
        {
            var names = index.Manifests.Select(m => m.Annotations?.GetValueOrDefault(Annotations.RefName)).OfType<string>();
            throw new BuildException($"oci:{source.LayoutPath}: no image tagged '{source.Tag}' (tags: {string.Join(", ", names)})");
        }
        if (matches[0].MediaType != MediaTypes.ImageManifest && matches[0].MediaType != MediaTypes.DockerManifest)
        {
            throw new BuildException($"oci:{source.LayoutPath}:{source.Tag}: '{matches[0].MediaType}' is not an image manifest");
        }
        return matches[0];
    }

    private static async Task<byte[]> CopyBlobAsync(KilnStore store, OciLayoutSource source, Descriptor desc, CancellationToken ct)
    {
        if (!store.HasBlob(desc.Digest))
        {
            var path = Path.Combine(source.LayoutPath, "blobs", "sha256", desc.Digest.Hex);
            if (!File.Exists(path))
            {
                throw new BuildException($"oci:{source.LayoutPath}: blob {desc.Digest} is missing");
            }
            if (new FileInfo(path).Length != desc.Size)
            {
                throw new BuildException($"oci:{source.LayoutPath}: blob {desc.Digest} is {new FileInfo(path).Length} bytes, its descriptor says {desc.Size}");
            }
            using var writer = store.CreateBlobWriter();
            await using (var input = File.OpenRead(path))
            {
                await input.CopyToAsync(writer, ct).ConfigureAwait(false);
            }
            await writer.CommitAsync(desc.MediaType, desc.Digest, ct).ConfigureAwait(false);
        }
        if (desc.MediaType is MediaTypes.ImageManifest or MediaTypes.ImageConfig or MediaTypes.DockerManifest or MediaTypes.DockerConfig)
        {
            return await store.ReadBlobAsync(desc.Digest, ct).ConfigureAwait(false);
        }
        return [];
    }
}
