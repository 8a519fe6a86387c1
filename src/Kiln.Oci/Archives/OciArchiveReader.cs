using System.Text;
using Kiln.Oci.Image;

namespace Kiln.Oci.Archives;

/// <summary>Reads an oci-archive in place: one pass over the tar headers finds every file's offset, then
/// <c>index.json</c> names the image and blobs are read straight from the tar, without unpacking it.</summary>
public sealed class OciArchiveReader : IDisposable
{
    private readonly TarFiles _files;
    private readonly bool _ownsFiles;

    private OciArchiveReader(TarFiles files, ImageIndex index, bool ownsFiles)
    {
        _files = files;
        Index = index;
        _ownsFiles = ownsFiles;
    }

    /// <summary>The archive file.</summary>
    public string Path => _files.Path;

    /// <summary>The archive's <c>index.json</c>.</summary>
    public ImageIndex Index { get; }

    /// <summary>Opens an archive and reads its index. Throws <see cref="ArchiveException"/> naming the file when it is
    /// missing, not a tar, or not an OCI image layout.</summary>
    public static OciArchiveReader Open(string path)
    {
        var files = TarFiles.Open(path);
        try
        {
            if (!HasLayout(files))
            {
                throw new ArchiveException(files.Contains("manifest.json")
                    ? $"{path}: not an oci-archive but a docker-archive (manifest.json, no OCI layout): use docker-archive:{path}"
                    : $"{path}: not an oci-archive (the tar has no oci-layout and index.json)");
            }
            return Over(files, ownsFiles: true);
        }
        catch
        {
            files.Dispose();
            throw;
        }
    }

    /// <summary>Whether the tar holds an OCI image layout (<c>oci-layout</c> and <c>index.json</c>).</summary>
    internal static bool HasLayout(TarFiles files) => files.Contains("oci-layout") && files.Contains("index.json");

    /// <summary>A reader of the layout in <paramref name="files"/>, which the caller may keep owning.</summary>
    internal static OciArchiveReader Over(TarFiles files, bool ownsFiles)
    {
        var layout = files.ReadDocument("oci-layout");
        if (!Encoding.UTF8.GetString(layout).Contains("imageLayoutVersion", StringComparison.Ordinal))
        {
            throw new ArchiveException($"{files.Path}: oci-layout does not name an imageLayoutVersion");
        }
        ImageIndex index;
        try
        {
            index = OciJson.DeserializeIndex(files.ReadDocument("index.json"));
        }
        catch (System.Text.Json.JsonException ex)
        {
            throw new ArchiveException($"{files.Path}: index.json is not valid: {ex.Message}", ex);
        }
        return new OciArchiveReader(files, index, ownsFiles);
    }

    /// <summary>The image manifest tagged <paramref name="refName"/> (<c>org.opencontainers.image.ref.name</c>), or
    /// with no name given of the archive's only entry. When that entry is an index (or an index of indexes), the
    /// manifest in it for <paramref name="platform"/> (by default <see cref="Platform.Host"/>).</summary>
    /// <exception cref="ArchiveException">No such tag, or several entries and no tag.</exception>
    /// <exception cref="ImageException">No image for the platform, or a document that is not what its descriptor says.</exception>
    public Descriptor FindManifest(string? refName, Platform? platform = null)
    {
        var tagged = FindTagged(refName);
        return IndexSelection.Resolve(tagged, platform ?? Platform.Host, d => IndexSelection.ReadDocument(d, OpenBlob, Path), Path);
    }

    /// <summary>The entry tagged <paramref name="refName"/>, or with no name given the archive's only entry (a manifest
    /// or an index).</summary>
    /// <exception cref="ArchiveException">No such tag, or several entries and no tag.</exception>
    public Descriptor FindTagged(string? refName)
    {
        // Artifacts attached to an image (referrers: an SBOM, test results) are entries too, but not images to take.
        var manifests = Index.Manifests.Where(m => m.ArtifactType is null).ToList();
        if (refName is null)
        {
            if (manifests.Count != 1)
            {
                var names = manifests.Select(m => m.Annotations?.GetValueOrDefault(Annotations.RefName)).OfType<string>().ToList();
                throw new ArchiveException(manifests.Count == 0
                    ? $"{Path}: index.json lists no image"
                    : $"{Path}: holds {manifests.Count} images; name one with oci-archive:{Path}:TAG (tags: {(names.Count == 0 ? "none" : string.Join(", ", names))})");
            }
            return manifests[0];
        }
        var matches = manifests.Where(m => m.Annotations?.GetValueOrDefault(Annotations.RefName) == refName).ToList();
        if (matches.Count != 1)
        {
            var names = manifests.Select(m => m.Annotations?.GetValueOrDefault(Annotations.RefName)).OfType<string>();
            throw new ArchiveException(matches.Count == 0
                ? $"{Path}: no image tagged '{refName}' (tags: {string.Join(", ", names)})"
                : $"{Path}: {matches.Count} images are tagged '{refName}'");
        }
        return matches[0];
    }

    public bool HasBlob(Digest digest) => _files.Contains(BlobName(digest));

    /// <summary>Opens a blob for reading, checking that its size matches <paramref name="descriptor"/>. The content
    /// is not hashed here: readers check the digest as they consume it.</summary>
    public Stream OpenBlob(Descriptor descriptor)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        var name = BlobName(descriptor.Digest);
        var size = _files.SizeOf(name) ?? throw new ArchiveException($"{Path}: blob {descriptor.Digest} is missing");
        if (size != descriptor.Size)
        {
            throw new ArchiveException($"{Path}: blob {descriptor.Digest} is {size} bytes, its descriptor says {descriptor.Size}");
        }
        return _files.OpenFile(name)!;
    }

    public void Dispose()
    {
        if (_ownsFiles)
        {
            _files.Dispose();
        }
    }

    internal static string BlobName(Digest digest) => "blobs/sha256/" + digest.Hex;
}
