using Kiln.Build.Definition;
using Kiln.Build.Layers;
using Kiln.Build.Store;
using Kiln.Oci;
using Kiln.Oci.Archives;
using Kiln.Oci.Image;

namespace Kiln.Build.Execution;

/// <summary><c>from: oci:PATH[:TAG]</c> and <c>from: oci-archive:FILE[:TAG]</c>: copies an image out of another OCI
/// image layout (a folder, or a tar of one read in place) into the store, checking every digest, and extracts its
/// layers as snapshots. A tag that names an index (a multi-platform image, nested or not) gives the image for
/// <see cref="BuildOptions.Platform"/>; OCI and Docker schema 2 documents are read alike.</summary>
internal static class OciImport
{
    /// <summary>Where an image comes from: a name for messages, its manifest, and a way to open its blobs
    /// (checked against the descriptor's size).</summary>
    private sealed record Source(string Where, Descriptor Manifest, Func<Descriptor, Stream> Open);

    /// <summary>The digest of the manifest the tag names (for <paramref name="platform"/>), for the plan's base key.
    /// An index with no image for the platform is a problem of the definition.</summary>
    public static string Identity(OciLayoutSource source, Platform platform)
    {
        try
        {
            return FindManifest(source, platform).Digest.Value;
        }
        // A missing layout or tag is the definition's problem, as a missing archive is for oci-archive:.
        catch (Exception ex) when (ex is ImageException or BuildException)
        {
            throw DefinitionException.At(source.Mark, $"from oci: {ex.Message}");
        }
    }

    /// <summary>The manifest digest of the archive's image, for the plan's base key. A missing file, a file that is
    /// not an oci-archive, an archive of several images and no tag, or no image for the platform is a problem of
    /// the definition.</summary>
    public static string Identity(OciArchiveSource source, Platform platform)
    {
        try
        {
            using var reader = OciArchiveReader.Open(source.ArchivePath);
            return reader.FindManifest(source.Tag, platform).Digest.Value;
        }
        catch (Exception ex) when (ex is ArchiveException or ImageException)
        {
            throw DefinitionException.At(source.Mark, $"from oci-archive: {ex.Message}");
        }
    }

    public static Task<ImageState> ImportAsync(KilnStore store, OciLayoutSource source, BuildOptions options, CancellationToken ct)
    {
        Descriptor manifest;
        try
        {
            manifest = FindManifest(source, options.Platform);
        }
        catch (ImageException ex)
        {
            throw new BuildException(ex.Message, ex);
        }
        return ImportAsync(store, new Source($"oci:{source.LayoutPath}:{source.Tag}", manifest, d => OpenLayoutBlob(source, d)), options, ct);
    }

    public static async Task<ImageState> ImportAsync(KilnStore store, OciArchiveSource source, BuildOptions options, CancellationToken ct)
    {
        string where = "oci-archive:" + source.ArchivePath + (source.Tag is null ? "" : ":" + source.Tag);
        OciArchiveReader reader;
        Descriptor manifest;
        try
        {
            reader = OciArchiveReader.Open(source.ArchivePath);
        }
        catch (ArchiveException ex)
        {
            throw new BuildException(ex.Message, ex);
        }
        using (reader)
        {
            try
            {
                manifest = reader.FindManifest(source.Tag, options.Platform);
            }
            catch (Exception ex) when (ex is ArchiveException or ImageException)
            {
                throw new BuildException(ex.Message, ex);
            }
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
        var manifestBytes = ReadDocument(source, desc);
        var manifest = Parse(where, "manifest", () => OciJson.DeserializeManifest(manifestBytes));
        if (!MediaTypes.IsConfig(manifest.Config.MediaType))
        {
            throw new BuildException($"{where}: the manifest's config has media type '{manifest.Config.MediaType}', not an image config "
                + $"('{MediaTypes.ImageConfig}' or '{MediaTypes.DockerConfig}'): it is not a container image");
        }
        var configBytes = ReadDocument(source, manifest.Config);
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
                    throw new BuildException($"{where}: layer {i + 1} has unsupported media type '{layer.MediaType}' "
                        + "(Kiln reads OCI and Docker layers: tar, gzip or zstd)");
                }
                var diffId = config.RootFs.DiffIds[i];
                if (store.Snapshots.HasSnapshot(diffId) && store.Content.HasBlob(layer.Digest))
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
                store.Snapshots.CommitSnapshot(dir, diffId);
            }
            await store.Content.WriteBlobAsync(configBytes, manifest.Config.MediaType, ct).ConfigureAwait(false);
            await store.Content.WriteBlobAsync(manifestBytes, desc.MediaType, ct).ConfigureAwait(false);
        }
        finally
        {
            store.DeleteTempDir(work);
        }
        // The same blobs under OCI's names for them: the images Kiln writes on this one are OCI images throughout.
        return new ImageState { Layers = [.. manifest.Layers.Select(l => l with { MediaType = MediaTypes.OciLayer(l.MediaType) })], Config = config };
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
    private static byte[] ReadDocument(Source source, Descriptor desc)
    {
        try
        {
            return IndexSelection.ReadDocument(desc, source.Open, source.Where);
        }
        catch (ImageException ex)
        {
            throw new BuildException(ex.Message, ex);
        }
    }

    /// <summary>The manifest the layout's tag names, through any index it names for <paramref name="platform"/>.
    /// A missing or unreadable index.json or tag throws <see cref="BuildException"/>; no image for the platform,
    /// <see cref="ImageException"/>.</summary>
    private static Descriptor FindManifest(OciLayoutSource source, Platform platform)
    {
        string where = $"oci:{source.LayoutPath}";
        var indexPath = Path.Combine(source.LayoutPath, "index.json");
        if (!File.Exists(indexPath))
        {
            throw new BuildException($"{where}: not an OCI image layout (no index.json)");
        }
        var index = Parse(where, "index.json", () => OciJson.DeserializeIndex(File.ReadAllBytes(indexPath)));
        var matches = index.Manifests.Where(m => m.Annotations is { } a && a.TryGetValue(Annotations.RefName, out var n) && n == source.Tag).ToList();
        if (matches.Count == 0)
        {
            var names = index.Manifests.Select(m => m.Annotations?.GetValueOrDefault(Annotations.RefName)).OfType<string>();
            throw new BuildException($"{where}: no image tagged '{source.Tag}' (tags: {string.Join(", ", names)})");
        }
        return IndexSelection.Resolve(matches[0], platform,
            d => IndexSelection.ReadDocument(d, blob => OpenLayoutBlob(source, blob), where), $"{where}:{source.Tag}");
    }

    private static async Task CopyBlobAsync(KilnStore store, Source source, Descriptor desc, CancellationToken ct)
    {
        if (store.Content.HasBlob(desc.Digest))
        {
            return;
        }
        using var writer = store.Content.CreateBlobWriter();
        await using (var input = source.Open(desc))
        {
            await input.CopyToAsync(writer, ct).ConfigureAwait(false);
        }
        await writer.CommitAsync(desc.MediaType, desc.Digest, ct).ConfigureAwait(false);
    }
}
