using System.Text.Json;
using Kiln.Oci.Image;

namespace Kiln.Oci.Archives;

/// <summary>Writes a docker-archive as <c>docker save</c> (Docker 25 and later) does: the legacy <c>manifest.json</c>
/// (<c>[{Config, RepoTags, Layers}]</c>, paths into <c>blobs/sha256/</c>) and <c>repositories</c> for
/// <c>docker load</c>, <c>podman load</c> and <c>skopeo docker-archive:</c>, and beside them the OCI layout
/// (<c>oci-layout</c>, <c>index.json</c>, the manifest tagged with TAG and named REPO:TAG) that tools importing OCI
/// archives read.</summary>
/// <remarks>Layers stay as they are in the store (gzip or zstd): the loaders decompress layer files whatever the
/// names, and check each against the config's diff IDs.</remarks>
public static class DockerArchiveWriter
{
    /// <param name="manifest">The image manifest (OCI or Docker schema 2) in <paramref name="source"/>.</param>
    /// <param name="repoTag">The name the loaded image gets, <c>REPO:TAG</c> (a missing tag means <c>latest</c>).</param>
    public static async Task WriteAsync(Stream output, IImageSource source, Descriptor manifest, string repoTag, ArchiveOptions options,
        IProgress<ImageCopyEvent>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(repoTag);
        await ArchiveCopy.WriteAsync(new ArchiveImageSink(output, ArchiveKind.Docker, options), source, manifest, repoTag, progress, cancellationToken).ConfigureAwait(false);
    }

    /// <summary><c>web</c> → (<c>web</c>, <c>latest</c>); <c>host:5000/web:1</c> → (<c>host:5000/web</c>, <c>1</c>).</summary>
    public static (string Repo, string Tag) SplitRepoTag(string repoTag)
    {
        ArgumentException.ThrowIfNullOrEmpty(repoTag);
        int colon = repoTag.LastIndexOf(':');
        return colon > 0 && !repoTag[(colon + 1)..].Contains('/')
            ? (repoTag[..colon], repoTag[(colon + 1)..])
            : (repoTag, "latest");
    }

    internal static byte[] LegacyManifest(Manifest manifest, string repoTag)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartArray();
            w.WriteStartObject();
            w.WriteString("Config", ArchiveImageSink.BlobName(manifest.Config.Digest));
            w.WriteStartArray("RepoTags");
            w.WriteStringValue(repoTag);
            w.WriteEndArray();
            w.WriteStartArray("Layers");
            foreach (var layer in manifest.Layers)
            {
                w.WriteStringValue(ArchiveImageSink.BlobName(layer.Digest));
            }
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndArray();
        }
        return ms.ToArray();
    }

    // The legacy file maps a tag to the v1 id of the top layer; loaders that have manifest.json ignore it, older
    // tools only need the name, so the top layer's blob stands in for the id (empty image: the config).
    internal static byte[] Repositories(Manifest manifest, string repo, string tag)
    {
        var top = manifest.Layers.Count > 0 ? manifest.Layers[^1].Digest : manifest.Config.Digest;
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteStartObject(repo);
            w.WriteString(tag, top.Hex);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return ms.ToArray();
    }
}
