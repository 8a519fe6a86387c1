using Kiln.Build.Definition;
using Kiln.Build.Layers;
using Kiln.Build.Store;
using Kiln.Oci;
using Kiln.Oci.Archives;
using Kiln.Oci.Image;
using Kiln.Oci.Layout;

namespace Kiln.Build.Execution;

/// <summary><c>from: oci:PATH[:TAG]</c> and <c>from: oci-archive:FILE[:TAG]</c>: copies an image out of another OCI
/// image layout (a folder, or a tar of one read in place) into the store, checking every digest, and extracts its
/// layers as snapshots. A tag that names an index (a multi-platform image, nested or not) gives the image for
/// <see cref="BuildOptions.Platform"/>; OCI and Docker schema 2 documents are read alike.</summary>
internal static class OciImport
{
    /// <summary>The digest of the manifest the tag names (for <paramref name="platform"/>), for the plan's base key.
    /// A missing layout or tag, or an index with no image for the platform, is a problem of the definition.</summary>
    public static string Identity(OciLayoutSource source, Platform platform)
    {
        try
        {
            return FindManifest(new LayoutImageSource(source.LayoutPath), source.Tag, platform, LayoutWhere(source)).Digest.Value;
        }
        catch (ImageException ex)
        {
            throw DefinitionException.At(source.Mark, $"from oci: {ex.Message}");
        }
    }

    /// <summary>The manifest digest of the archive's image, for the plan's base key. A missing file, a file that is
    /// not an archive of its kind, an archive of several images and no tag, or no image for the platform is a
    /// problem of the definition.</summary>
    public static string Identity(OciArchiveSource source, Platform platform)
    {
        try
        {
            using var archive = OpenArchive(source);
            return FindManifest(archive, source.Tag, platform, archive.Name).Digest.Value;
        }
        catch (Exception ex) when (ex is ArchiveException or ImageException)
        {
            throw DefinitionException.At(source.Mark, $"from {(source.Docker ? "docker-archive" : "oci-archive")}: {ex.Message}");
        }
    }

    private static ArchiveImageSource OpenArchive(OciArchiveSource source) =>
        source.Docker ? ArchiveImageSource.OpenDocker(source.ArchivePath) : ArchiveImageSource.Open(source.ArchivePath);

    public static async Task<ImageState> ImportAsync(KilnStore store, OciLayoutSource source, BuildOptions options, CancellationToken ct)
    {
        var layout = new LayoutImageSource(source.LayoutPath);
        string where = LayoutWhere(source);
        var manifest = Checked(() => FindManifest(layout, source.Tag, options.Platform, where));
        return await ImportAsync(store, layout, where, manifest, options, ct).ConfigureAwait(false);
    }

    public static async Task<ImageState> ImportAsync(KilnStore store, OciArchiveSource source, BuildOptions options, CancellationToken ct)
    {
        string where = source.Written;
        using var archive = Checked(() => OpenArchive(source));
        var manifest = Checked(() => FindManifest(archive, source.Tag, options.Platform, archive.Name));
        return await ImportAsync(store, archive, where, manifest, options, ct).ConfigureAwait(false);
    }

    private static string LayoutWhere(OciLayoutSource source) => $"oci:{source.LayoutPath}:{source.Tag}";

    /// <summary>The manifest <paramref name="tag"/> names, through any index for <paramref name="platform"/>. Layouts
    /// and archives are read synchronously (their tasks have completed on return), as planning needs.</summary>
    private static Descriptor FindManifest(IImageSource source, string? tag, Platform platform, string where)
    {
        var tagged = source.ResolveAsync(tag).GetAwaiter().GetResult();
        return IndexSelection.ResolveAsync(tagged, platform, (d, ct) => ImageReader.ReadDocumentAsync(source, d, ct), where)
            .GetAwaiter().GetResult();
    }

    /// <summary>What a source refuses fails the build, with the source's message.</summary>
    private static T Checked<T>(Func<T> read)
    {
        try
        {
            return read();
        }
        catch (Exception ex) when (ex is ArchiveException or ImageException)
        {
            throw new BuildException(ex.Message, ex);
        }
    }

    private static async Task<T> CheckedAsync<T>(Func<Task<T>> read)
    {
        try
        {
            return await read().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is ArchiveException or ImageException)
        {
            throw new BuildException(ex.Message, ex);
        }
    }

    /// <summary>Reads the image <paramref name="desc"/> names and checks what it says of itself: an image config, one
    /// diff ID per layer, layers of a media type Kiln unpacks.</summary>
    private static async Task<(IImage Image, ImageConfig Config)> ReadCheckedAsync(IImageSource source, string where, Descriptor desc, CancellationToken ct)
    {
        var image = await CheckedAsync(() => ImageReader.ReadManifestAsync(source, desc, ct)).ConfigureAwait(false);
        var manifest = image.Manifest;
        if (!MediaTypes.IsConfig(manifest.Config.MediaType))
        {
            throw new BuildException($"{where}: the manifest's config has media type '{manifest.Config.MediaType}', not an image config "
                + $"('{MediaTypes.ImageConfig}' or '{MediaTypes.DockerConfig}'): it is not a container image");
        }
        var config = await CheckedAsync(() => image.ConfigAsync(ct)).ConfigureAwait(false);
        if (config.RootFs.DiffIds.Count != manifest.Layers.Count)
        {
            throw new BuildException($"{where}: the config lists {config.RootFs.DiffIds.Count} diff IDs for {manifest.Layers.Count} layers");
        }
        for (int i = 0; i < manifest.Layers.Count; i++)
        {
            if (!MediaTypes.IsLayer(manifest.Layers[i].MediaType))
            {
                throw new BuildException($"{where}: layer {i + 1} has unsupported media type '{manifest.Layers[i].MediaType}' "
                    + "(Kiln reads OCI and Docker layers: tar, gzip or zstd)");
            }
        }
        return (image, config);
    }

    /// <summary>The same blobs under OCI's names for them: the images Kiln writes on this one are OCI images throughout.</summary>
    private static ImageState State(Manifest manifest, ImageConfig config) =>
        new() { Layers = [.. manifest.Layers.Select(l => l with { MediaType = MediaTypes.OciLayer(l.MediaType) })], Config = config };

    /// <summary>An image whose blobs the store holds, checked on their way in (a pull, or the pin an earlier pull left):
    /// checked as an import is, its layers left to be extracted on first use (<see cref="Store.Snapshots.SnapshotStore.EnsureAsync"/>),
    /// where each is checked against its diff ID. Nothing is read twice: the blobs are not hashed again.</summary>
    internal static async Task<ImageState> FromStoreAsync(KilnStore store, string where, Descriptor desc, CancellationToken ct)
    {
        var (image, config) = await ReadCheckedAsync(new StoreImageSource(store), where, desc, ct).ConfigureAwait(false);
        foreach (var layer in image.Manifest.Layers)
        {
            if (!store.Content.HasBlob(layer.Digest))
            {
                throw new BuildException($"{where}: layer {layer.Digest} is not in the store (run `kiln verify`, then pull the image again)");
            }
        }
        return State(image.Manifest, config);
    }

    /// <summary>Checks everything first — each blob's size and digest, the config's diff IDs against what each
    /// layer unpacks to — and only then copies blobs and commits snapshots, so a bad image leaves nothing in the store.</summary>
    internal static async Task<ImageState> ImportAsync(KilnStore store, IImageSource source, string where, Descriptor desc,
        BuildOptions options, CancellationToken ct)
    {
        var (image, config) = await ReadCheckedAsync(source, where, desc, ct).ConfigureAwait(false);
        var manifest = image.Manifest;
        var work = store.CreateTempDir("import");
        try
        {
            var snapshots = new List<(string Dir, Digest DiffId)>();
            for (int i = 0; i < image.Layers.Count; i++)
            {
                var layer = image.Layers[i];
                var blob = layer.Descriptor;
                var diffId = config.RootFs.DiffIds[i];
                if (store.Snapshots.HasSnapshot(diffId) && store.Content.HasBlob(blob.Digest))
                {
                    continue;
                }
                var target = Path.Combine(work, "layer" + i.ToString(System.Globalization.CultureInfo.InvariantCulture));
                // The blob is checked before its bytes reach a decompressor.
                await using (var file = await CheckedAsync(() => layer.OpenAsync(ct)).ConfigureAwait(false))
                {
                    var blobDigest = Digest.FromHash(await Sha256Hasher.HashDataAsync(file, ct).ConfigureAwait(false));
                    if (blobDigest != blob.Digest)
                    {
                        throw new BuildException($"{where}: layer {i + 1} does not match its descriptor: its {blob.Size} bytes hash to {blobDigest}, the manifest says {blob.Digest}");
                    }
                }
                Digest actual;
                await using (var file = await CheckedAsync(() => layer.OpenAsync(ct)).ConfigureAwait(false))
                {
                    try
                    {
                        actual = await LayerExtractor.ExtractAsync(file, blob.MediaType, target, options.Extraction, ct).ConfigureAwait(false);
                    }
                    catch (LayerException ex)
                    {
                        throw new BuildException($"{where}: layer {i + 1} ({blob.Digest}): {ex.Message}", ex);
                    }
                }
                if (actual != diffId)
                {
                    throw new BuildException($"{where}: layer {i + 1} unpacks to {actual}, but the config says {diffId}");
                }
                snapshots.Add((target, diffId));
            }
            // Everything checked: copy layers and config, then commit snapshots, then the manifest.
            var sink = new SnapshotsBeforeManifest(new StoreImageSink(store), () =>
            {
                foreach (var (dir, diffId) in snapshots)
                {
                    store.Snapshots.CommitSnapshot(dir, diffId);
                }
            });
            await CheckedAsync(() => ImageCopier.CopyAsync(source, desc, sink, cancellationToken: ct)).ConfigureAwait(false);
        }
        finally
        {
            store.DeleteTempDir(work);
        }
        return State(manifest, config);
    }

    /// <summary>The store as a sink that commits the import's snapshots once the blobs are in and before the manifest,
    /// as a build commits a step's layer before the image that names it.</summary>
    private sealed class SnapshotsBeforeManifest(StoreImageSink inner, Action commitSnapshots) : IImageSink
    {
        public string Name => inner.Name;

        public Task<bool> HasBlobAsync(Descriptor blob, CancellationToken cancellationToken = default) => inner.HasBlobAsync(blob, cancellationToken);

        public Task WriteBlobAsync(Descriptor blob, Stream content, CancellationToken cancellationToken = default) =>
            inner.WriteBlobAsync(blob, content, cancellationToken);

        public Task WriteManifestAsync(Descriptor manifest, ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken = default)
        {
            commitSnapshots();
            return inner.WriteManifestAsync(manifest, bytes, cancellationToken);
        }

        public Task TagAsync(string name, Descriptor manifest, CancellationToken cancellationToken = default) =>
            inner.TagAsync(name, manifest, cancellationToken);
    }
}
