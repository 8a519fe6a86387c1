using Kiln.Build.Definition;
using Kiln.Build.Layers;
using Kiln.Build.Store;
using Kiln.Oci;
using Kiln.Oci.Archives;

namespace Kiln.Build.Execution;

/// <summary><c>from: oci:PATH[:TAG]</c> and <c>from: oci-archive:FILE[:TAG]</c>: copies an image out of another OCI
/// image layout (a folder, or a tar of one read in place) into the store, checking every digest, and extracts its
/// layers as snapshots.</summary>
internal static class OciImport
{
    /// <summary>Where an image comes from: a name for messages, its manifest, and a way to open its blobs
    /// (checked against the descriptor's size).</summary>
    private sealed record Source(string Where, Descriptor Manifest, Func<Descriptor, Stream> Open);

    /// <summary>The manifest digest the tag names, for the plan's base key.</summary>
    public static string Identity(OciLayoutSource source) => FindManifest(source).Digest.Value;

    /// <summary>The manifest digest of the archive's image, for the plan's base key. A missing file, a file that is
    /// not an oci-archive, or an archive of several images and no tag is a problem of the definition.</summary>
    public static string Identity(OciArchiveSource source)
    {
        try
        {
            using var reader = OciArchiveReader.Open(source.ArchivePath);
            return reader.FindManifest(source.Tag).Digest.Value;
        }
        catch (ArchiveException ex)
        {
            throw DefinitionException.At(source.Mark, $"from oci-archive: {ex.Message}");
        }
    }

    public static Task<ImageState> ImportAsync(KilnStore store, OciLayoutSource source, BuildOptions options, CancellationToken ct) =>
        ImportAsync(store, new Source($"oci:{source.LayoutPath}:{source.Tag}", FindManifest(source), d => OpenLayoutBlob(source, d)), options, ct);

    public static async Task<ImageState> ImportAsync(KilnStore store, OciArchiveSource source, BuildOptions options, CancellationToken ct)
    {
        string where = "oci-archive:" + source.ArchivePath + (source.Tag is null ? "" : ":" + source.Tag);
        OciArchiveReader reader;
        Descriptor manifest;
        try
        {
            reader = OciArchiveReader.Open(source.ArchivePath);
            manifest = reader.FindManifest(source.Tag);
        }
        catch (ArchiveException ex)
        {
            throw new BuildException(ex.Message, ex);
        }
        using (reader)
        {
            Stream Open(Descriptor d)
            {
                try
                {
                    return reader.OpenBlob(d);
                }
                catch (ArchiveException ex)
                {
                    throw new BuildException(ex.Message, ex);
                }
            }
            return await ImportAsync(store, new Source(where, manifest, Open), options, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Checks everything first — each blob's size and digest, the config's diff IDs against what each
    /// layer unpacks to — and only then commits blobs and snapshots, so a bad image leaves nothing in the store.</summary>
    private static async Task<ImageState> ImportAsync(KilnStore store, Source source, BuildOptions options, CancellationToken ct)
    {
        string where = source.Where;
        var desc = source.Manifest;
        var manifestBytes = await ReadSmallBlobAsync(source, desc, ct).ConfigureAwait(false);
        var manifest = Parse(where, "manifest", () => OciJson.DeserializeManifest(manifestBytes));
        var configBytes = await ReadSmallBlobAsync(source, manifest.Config, ct).ConfigureAwait(false);
        var config = Parse(where, "config", () => OciJson.DeserializeConfig(configBytes));
        if (config.RootFs.DiffIds.Count != manifest.Layers.Count)
        {
            throw new BuildException($"{where}: the config lists {config.RootFs.DiffIds.Count} diff IDs for {manifest.Layers.Count} layers");
        }
        var work = store.CreateTempDir("import");
        try
        {
            var snapshots = new List<(string Dir, Digest DiffId)>();
            for (int i = 0; i < manifest.Layers.Count; i++)
            {
                var layer = manifest.Layers[i];
                if (!MediaTypes.IsLayer(layer.MediaType))
                {
                    throw new BuildException($"{where}: layer {i + 1} has unsupported media type '{layer.MediaType}'");
                }
                var diffId = config.RootFs.DiffIds[i];
                if (store.HasSnapshot(diffId) && store.HasBlob(layer.Digest))
                {
                    continue;
                }
                var target = Path.Combine(work, "layer" + i.ToString(System.Globalization.CultureInfo.InvariantCulture));
                // The blob is checked before its bytes reach a decompressor.
                await using (var file = source.Open(layer))
                {
                    var blobDigest = Digest.FromHash(await Sha256Hasher.HashDataAsync(file, ct).ConfigureAwait(false));
                    if (blobDigest != layer.Digest)
                    {
                        throw new BuildException($"{where}: layer {i + 1} does not match its descriptor: its {layer.Size} bytes hash to {blobDigest}, the manifest says {layer.Digest}");
                    }
                }
                Digest actual;
                await using (var file = source.Open(layer))
                {
                    try
                    {
                        actual = await LayerExtractor.ExtractAsync(file, layer.MediaType, target, options.Extraction, ct).ConfigureAwait(false);
                    }
                    catch (LayerException ex)
                    {
                        throw new BuildException($"{where}: layer {i + 1} ({layer.Digest}): {ex.Message}", ex);
                    }
                }
                if (actual != diffId)
                {
                    throw new BuildException($"{where}: layer {i + 1} unpacks to {actual}, but the config says {diffId}");
                }
                snapshots.Add((target, diffId));
            }
            // Everything checked: commit layers, then snapshots, then config and manifest.
            foreach (var layer in manifest.Layers)
            {
                await CopyBlobAsync(store, source, layer, ct).ConfigureAwait(false);
            }
            foreach (var (dir, diffId) in snapshots)
            {
                store.CommitSnapshot(dir, diffId);
            }
            await store.WriteBlobAsync(configBytes, manifest.Config.MediaType, ct).ConfigureAwait(false);
            await store.WriteBlobAsync(manifestBytes, desc.MediaType, ct).ConfigureAwait(false);
        }
        finally
        {
            store.DeleteTempDir(work);
        }
        return new ImageState { Layers = manifest.Layers, Config = config };
    }

    private static T Parse<T>(string where, string what, Func<T> parse)
    {
        try
        {
            return parse();
        }
        catch (System.Text.Json.JsonException ex)
        {
            throw new BuildException($"{where}: the {what} is not valid: {ex.Message}", ex);
        }
    }

    private static Stream OpenLayoutBlob(OciLayoutSource source, Descriptor desc)
    {
        var path = Path.Combine(source.LayoutPath, "blobs", "sha256", desc.Digest.Hex);
        if (!File.Exists(path))
        {
            throw new BuildException($"oci:{source.LayoutPath}: blob {desc.Digest} is missing");
        }
        var length = new FileInfo(path).Length;
        if (length != desc.Size)
        {
            throw new BuildException($"oci:{source.LayoutPath}: blob {desc.Digest} is {length} bytes, its descriptor says {desc.Size}");
        }
        return File.OpenRead(path);
    }

    /// <summary>A manifest or config: read whole (at most 4 MiB) and checked against its descriptor.</summary>
    private static async Task<byte[]> ReadSmallBlobAsync(Source source, Descriptor desc, CancellationToken ct)
    {
        if (desc.Size > 4 << 20)
        {
            throw new BuildException($"{source.Where}: blob {desc.Digest} claims {desc.Size} bytes; a manifest or config may have at most 4 MiB");
        }
        byte[] bytes;
        await using (var file = source.Open(desc))
        {
            bytes = new byte[desc.Size];
            await file.ReadExactlyAsync(bytes, ct).ConfigureAwait(false);
        }
        var actual = Digest.Compute(bytes);
        if (actual != desc.Digest)
        {
            throw new BuildException($"{source.Where}: blob {desc.Digest} does not match its digest (its content hashes to {actual})");
        }
        return bytes;
    }

    private static Descriptor FindManifest(OciLayoutSource source)
    {
        var indexPath = Path.Combine(source.LayoutPath, "index.json");
        if (!File.Exists(indexPath))
        {
            throw new BuildException($"oci:{source.LayoutPath}: not an OCI image layout (no index.json)");
        }
        var index = Parse($"oci:{source.LayoutPath}", "index.json", () => OciJson.DeserializeIndex(File.ReadAllBytes(indexPath)));
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

    private static async Task CopyBlobAsync(KilnStore store, Source source, Descriptor desc, CancellationToken ct)
    {
        if (store.HasBlob(desc.Digest))
        {
            return;
        }
        using var writer = store.CreateBlobWriter();
        await using (var input = source.Open(desc))
        {
            await input.CopyToAsync(writer, ct).ConfigureAwait(false);
        }
        await writer.CommitAsync(desc.MediaType, desc.Digest, ct).ConfigureAwait(false);
    }
}
