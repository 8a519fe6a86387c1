using Kiln.Oci.Image;

namespace Kiln.Oci.Archives;

/// <summary>The kinds of archive <see cref="ArchiveImageSink"/> writes.</summary>
public enum ArchiveKind
{
    /// <summary>A tar of an OCI image layout, the manifest named by <c>org.opencontainers.image.ref.name</c>.</summary>
    Oci,

    /// <summary>What <c>docker save</c> writes: <c>manifest.json</c> and <c>repositories</c>, and the OCI layout beside them.</summary>
    Docker,
}

/// <summary>Writes one image into a tar archive as it is copied: the archive's own files first (<c>manifest.json</c>
/// and <c>repositories</c> for a docker-archive, then <c>oci-layout</c>, <c>index.json</c> and the blob folders),
/// then every blob and the manifest once, sorted by digest, so equal images give equal bytes.</summary>
/// <remarks>A tar is one stream: the sink takes content one piece at a time in its own order
/// (<see cref="ISequentialImageSink"/>). Each blob is checked against its digest and size as it is written; the
/// caller writes to a partial file and keeps it only once the copy is complete.</remarks>
public sealed class ArchiveImageSink(Stream output, ArchiveKind kind, ArchiveOptions options) : ISequentialImageSink
{
    private readonly UstarWriter _tar = new(output, options.Epoch.ToUnixTimeSeconds());

    public string Name => kind == ArchiveKind.Oci ? "oci-archive" : "docker-archive";

    public async Task<IReadOnlyList<Descriptor>> BeginAsync(ImageContents contents, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(contents);
        ArgumentException.ThrowIfNullOrEmpty(contents.Name);
        var root = contents.Root;
        if (!MediaTypes.IsManifest(root.MediaType))
        {
            throw new ArchiveException($"{root.Digest}: '{root.MediaType}' is not an image manifest");
        }
        var annotations = new SortedDictionary<string, string>(StringComparer.Ordinal);
        if (kind == ArchiveKind.Docker)
        {
            var (repo, tag) = DockerArchiveWriter.SplitRepoTag(contents.Name);
            var manifest = OciJson.DeserializeManifest(contents.Manifests.Single(m => m.Descriptor.Digest == root.Digest).Bytes.Span);
            await _tar.WriteFileAsync("manifest.json", DockerArchiveWriter.LegacyManifest(manifest, repo + ":" + tag), cancellationToken).ConfigureAwait(false);
            await _tar.WriteFileAsync("repositories", DockerArchiveWriter.Repositories(manifest, repo, tag), cancellationToken).ConfigureAwait(false);
            // The index names the image in full as well as by tag: podman loads the archive through this index (its
            // OCI loader comes first) and takes the full name from it, else it names the image after the tag
            // (localhost/latest:latest). No registry-qualified name is written: the archive names the image as the
            // user did (REPO:TAG), which podman qualifies as localhost/REPO:TAG, as it does the RepoTags of manifest.json.
            annotations[Annotations.ImageName] = repo + ":" + tag;
            annotations[Annotations.RefName] = tag;
        }
        else
        {
            annotations[Annotations.RefName] = contents.Name;
        }
        await _tar.WriteFileAsync("oci-layout", OciJson.Serialize(new OciLayoutFile()), cancellationToken).ConfigureAwait(false);
        var index = new ImageIndex { Manifests = [root with { Annotations = annotations, Platform = null }] };
        await _tar.WriteFileAsync("index.json", OciJson.Serialize(index), cancellationToken).ConfigureAwait(false);
        await _tar.WriteDirectoryAsync("blobs/", cancellationToken).ConfigureAwait(false);
        await _tar.WriteDirectoryAsync("blobs/sha256/", cancellationToken).ConfigureAwait(false);
        return [.. contents.Blobs.Concat(contents.Manifests.Select(m => m.Descriptor)).OrderBy(d => d.Digest.Value, StringComparer.Ordinal)];
    }

    /// <summary>Always false: an archive is written whole, each blob once.</summary>
    public Task<bool> HasBlobAsync(Descriptor blob, CancellationToken cancellationToken = default) => Task.FromResult(false);

    public Task WriteBlobAsync(Descriptor blob, Stream content, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(blob);
        return _tar.WriteBlobAsync(BlobName(blob.Digest), content, blob.Size, blob.Digest, cancellationToken);
    }

    public Task WriteManifestAsync(Descriptor manifest, ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        return _tar.WriteFileAsync(BlobName(manifest.Digest), bytes, cancellationToken);
    }

    /// <summary>Not supported: an archive names its image when it begins (<see cref="ImageContents.Name"/>).</summary>
    public Task TagAsync(string name, Descriptor manifest, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("an archive is named through ImageCopyOptions.Name");

    public Task CompleteAsync(CancellationToken cancellationToken = default) => _tar.FinishAsync(cancellationToken);

    internal static string BlobName(Digest digest) => "blobs/sha256/" + digest.Hex;
}
