using System.Text.Json;
using Kiln.Oci.Image;

namespace Kiln.Oci.Archives;

/// <summary>Reads a docker-archive in place (<c>docker save</c>, <c>podman save --format docker-archive</c>): its
/// <c>manifest.json</c> lists the images, each a config file, its <c>RepoTags</c> and its layer files. When the tar
/// also holds an OCI layout (Docker 25 and later, Kiln) the image's OCI manifest is used, so every digest is kept;
/// otherwise a Docker schema 2 manifest is made for the image from its files, as skopeo does.</summary>
public sealed class DockerArchiveReader : IDisposable
{
    private readonly TarFiles _files;
    private readonly OciArchiveReader? _layout;
    private readonly Dictionary<Digest, byte[]> _documents = [];
    private readonly Dictionary<Digest, string> _names = [];
    private static readonly byte[] ZstdMagic = [0x28, 0xb5, 0x2f, 0xfd];

    private DockerArchiveReader(TarFiles files, IReadOnlyList<DockerArchiveImage> images, OciArchiveReader? layout)
    {
        _files = files;
        Images = images;
        _layout = layout;
    }

    /// <summary>The archive file.</summary>
    public string Path => _files.Path;

    /// <summary>The images <c>manifest.json</c> lists, in its order.</summary>
    public IReadOnlyList<DockerArchiveImage> Images { get; }

    /// <summary>Opens an archive and reads its <c>manifest.json</c>.</summary>
    /// <exception cref="ArchiveException">Missing, not a tar, or no valid <c>manifest.json</c>; the message names the file.</exception>
    public static DockerArchiveReader Open(string path)
    {
        var files = TarFiles.Open(path);
        try
        {
            if (!files.Contains("manifest.json"))
            {
                throw new ArchiveException(OciArchiveReader.HasLayout(files)
                    ? $"{path}: not a docker-archive but an oci-archive (no manifest.json): use oci-archive:{path}"
                    : $"{path}: not a docker-archive (the tar has no manifest.json)");
            }
            var images = ParseManifestJson(path, files.ReadDocument("manifest.json"));
            var layout = OciArchiveReader.HasLayout(files) ? OciArchiveReader.Over(files, ownsFiles: false) : null;
            return new DockerArchiveReader(files, images, layout);
        }
        catch
        {
            files.Dispose();
            throw;
        }
    }

    /// <summary>The image whose <c>RepoTags</c> hold <paramref name="reference"/> (<c>REPO[:TAG]</c>, the tag
    /// <c>latest</c> when left out), or with none given the archive's only image; the descriptor of its manifest.</summary>
    /// <exception cref="ArchiveException">No such image, several, or files the image names that are not in the tar.</exception>
    public Descriptor FindImage(string? reference)
    {
        var image = Select(reference);
        lock (_documents)
        {
            return FromLayout(image) ?? Synthesize(image);
        }
    }

    private DockerArchiveImage Select(string? reference)
    {
        string Tags() => Images.SelectMany(i => i.RepoTags).ToList() is { Count: > 0 } tags ? string.Join(", ", tags) : "none";
        if (reference is null)
        {
            return Images.Count == 1 ? Images[0]
                : throw new ArchiveException(Images.Count == 0
                    ? $"{Path}: manifest.json lists no image"
                    : $"{Path}: holds {Images.Count} images; name one with docker-archive:{Path}:REPO:TAG (tags: {Tags()})");
        }
        var wanted = Normalise(reference);
        var matches = Images.Where(i => i.RepoTags.Any(t => Normalise(t) == wanted)).ToList();
        return matches.Count switch
        {
            1 => matches[0],
            0 => throw new ArchiveException($"{Path}: no image tagged '{reference}' (tags: {Tags()})"),
            _ => throw new ArchiveException($"{Path}: {matches.Count} images are tagged '{reference}' (tags: {Tags()})"),
        };
    }

    /// <summary><c>web</c> and <c>web:latest</c> are one name, as <c>docker load</c> takes them.</summary>
    private static string Normalise(string repoTag)
    {
        var (repo, tag) = DockerArchiveWriter.SplitRepoTag(repoTag);
        return repo + ":" + tag;
    }

    /// <summary>The OCI manifest beside <c>manifest.json</c> whose config is the image's, if the tar has a layout.</summary>
    private Descriptor? FromLayout(DockerArchiveImage image)
    {
        if (_layout is null)
        {
            return null;
        }
        var config = ConfigDigest(image);
        foreach (var entry in _layout.Index.Manifests.Where(m => m.ArtifactType is null && MediaTypes.IsManifest(m.MediaType)))
        {
            try
            {
                using var stream = _layout.OpenBlob(entry);
                var bytes = new byte[entry.Size];
                stream.ReadExactly(bytes);
                if (Digest.Compute(bytes) == entry.Digest && OciJson.DeserializeManifest(bytes).Config.Digest == config)
                {
                    return entry with { Annotations = null, Platform = null };
                }
            }
            catch (Exception ex) when (ex is ArchiveException or JsonException or EndOfStreamException)
            {
                // Not the image's manifest after all: the one made from manifest.json stands in.
            }
        }
        return null;
    }

    private Digest ConfigDigest(DockerArchiveImage image) => Digest.Compute(_files.ReadDocument(image.Config));

    /// <summary>A Docker schema 2 manifest of the image's files. A compressed layer is hashed for its digest; a plain
    /// one's digest is its diff ID from the config, which the reader of the blob checks.</summary>
    private Descriptor Synthesize(DockerArchiveImage image)
    {
        var configBytes = _files.ReadDocument(image.Config);
        var configDigest = Digest.Compute(configBytes);
        ImageConfig config;
        try
        {
            config = OciJson.DeserializeConfig(configBytes);
        }
        catch (JsonException ex)
        {
            throw new ArchiveException($"{Path}: {image.Config} is not an image config: {ex.Message}", ex);
        }
        if (config.RootFs.DiffIds.Count != image.Layers.Count)
        {
            throw new ArchiveException($"{Path}: {image.Config} lists {config.RootFs.DiffIds.Count} diff IDs for the {image.Layers.Count} layers manifest.json names");
        }
        _documents[configDigest] = configBytes;
        var layers = new List<Descriptor>();
        var magic = new byte[4];
        for (int i = 0; i < image.Layers.Count; i++)
        {
            var name = image.Layers[i];
            long size = _files.SizeOf(name) ?? throw new ArchiveException($"{Path}: layer {name} that manifest.json names is not in the tar");
            using var stream = _files.OpenFile(name)!;
            int read = stream.ReadAtLeast(magic, 4, throwOnEndOfStream: false);
            var compression = read >= 2 && magic[0] == 0x1f && magic[1] == 0x8b ? MediaTypes.DockerLayerGzip
                : read == 4 && magic.AsSpan().SequenceEqual(ZstdMagic) ? MediaTypes.DockerLayerZstd
                : MediaTypes.DockerLayerTar;
            Digest digest;
            if (compression == MediaTypes.DockerLayerTar)
            {
                digest = config.RootFs.DiffIds[i];
            }
            else
            {
                stream.Position = 0;
                digest = Digest.Compute(stream);
            }
            _names[digest] = name;
            layers.Add(new Descriptor { MediaType = compression, Digest = digest, Size = size });
        }
        _names[configDigest] = image.Config;
        var manifest = OciJson.Serialize(new Manifest
        {
            MediaType = MediaTypes.DockerManifest,
            Config = new Descriptor { MediaType = MediaTypes.DockerConfig, Digest = configDigest, Size = configBytes.Length },
            Layers = layers,
        });
        var desc = new Descriptor { MediaType = MediaTypes.DockerManifest, Digest = Digest.Compute(manifest), Size = manifest.Length };
        _documents[desc.Digest] = manifest;
        return desc;
    }

    /// <summary>Opens a blob (the made manifest, the config, a layer file, or a blob of the OCI layout), checking its
    /// size. The content is not hashed here: readers check the digest as they consume it.</summary>
    public Stream OpenBlob(Descriptor descriptor)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        string? name;
        lock (_documents)
        {
            if (_documents.TryGetValue(descriptor.Digest, out var bytes))
            {
                return bytes.Length == descriptor.Size ? new MemoryStream(bytes, writable: false)
                    : throw new ArchiveException($"{Path}: blob {descriptor.Digest} is {bytes.Length} bytes, its descriptor says {descriptor.Size}");
            }
            _names.TryGetValue(descriptor.Digest, out name);
        }
        if (name is null)
        {
            return _layout?.OpenBlob(descriptor) ?? throw new ArchiveException($"{Path}: blob {descriptor.Digest} is missing");
        }
        var size = _files.SizeOf(name)!.Value;
        return size == descriptor.Size ? _files.OpenFile(name)!
            : throw new ArchiveException($"{Path}: {name} is {size} bytes, its descriptor says {descriptor.Size}");
    }

    public void Dispose()
    {
        _layout?.Dispose();
        _files.Dispose();
    }

    private static List<DockerArchiveImage> ParseManifestJson(string path, byte[] bytes)
    {
        var images = new List<DockerArchiveImage>();
        try
        {
            using var doc = JsonDocument.Parse(bytes);
            if (doc.RootElement.ValueKind != JsonValueKind.Array)
            {
                throw new ArchiveException($"{path}: manifest.json is not a list of images");
            }
            foreach (var entry in doc.RootElement.EnumerateArray())
            {
                if (entry.ValueKind != JsonValueKind.Object
                    || !entry.TryGetProperty("Config", out var config) || config.ValueKind != JsonValueKind.String
                    || !entry.TryGetProperty("Layers", out var layers) || layers.ValueKind != JsonValueKind.Array
                    || layers.EnumerateArray().Any(l => l.ValueKind != JsonValueKind.String))
                {
                    throw new ArchiveException($"{path}: manifest.json entry {images.Count + 1} has no Config and Layers");
                }
                var tags = entry.TryGetProperty("RepoTags", out var t) && t.ValueKind == JsonValueKind.Array
                    ? t.EnumerateArray().Where(x => x.ValueKind == JsonValueKind.String).Select(x => x.GetString()!).ToList()
                    : [];
                images.Add(new DockerArchiveImage(config.GetString()!, tags, [.. layers.EnumerateArray().Select(l => l.GetString()!)]));
            }
        }
        catch (JsonException ex)
        {
            throw new ArchiveException($"{path}: manifest.json is not valid: {ex.Message}", ex);
        }
        return images;
    }
}

/// <summary>One entry of a docker-archive's <c>manifest.json</c>: paths in the tar, and the names the image carries.</summary>
public sealed record DockerArchiveImage(string Config, IReadOnlyList<string> RepoTags, IReadOnlyList<string> Layers);
