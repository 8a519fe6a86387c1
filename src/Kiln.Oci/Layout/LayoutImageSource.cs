using Kiln.Oci.Image;

namespace Kiln.Oci.Layout;

/// <summary>Images in an OCI image layout directory (<c>oci:PATH[:TAG]</c>): <c>index.json</c> names them by
/// <c>org.opencontainers.image.ref.name</c>, <c>blobs/sha256/HEX</c> holds their content.</summary>
/// <remarks>Reads are synchronous file operations wrapped in tasks: they complete before the call returns, so
/// planning (which is synchronous) can resolve a tag without blocking on anything.</remarks>
public sealed class LayoutImageSource(string path) : IImageSource
{
    public string Path { get; } = path;

    public string Name => "oci:" + Path;

    /// <summary>The layout's <c>index.json</c>.</summary>
    /// <exception cref="ImageException">Missing or not valid.</exception>
    public ImageIndex ReadIndex()
    {
        var indexPath = System.IO.Path.Combine(Path, "index.json");
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(indexPath);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            throw ImageException.NotALayout(Name, "no index.json");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw ImageException.Io(Name, "reading index.json", ex);
        }
        try
        {
            return OciJson.DeserializeIndex(bytes);
        }
        catch (System.Text.Json.JsonException ex)
        {
            throw ImageException.BadFile(Name, "index.json", ex);
        }
    }

    /// <summary>The entry tagged <paramref name="reference"/> (the first, if several are), or with none given the
    /// layout's only entry.</summary>
    public Task<Descriptor> ResolveAsync(string? reference, CancellationToken cancellationToken = default)
    {
        // Artifacts attached to an image (referrers: an SBOM, test results) are entries too, but not images to take.
        var manifests = ReadIndex().Manifests.Where(m => m.ArtifactType is null).ToList();
        var tags = manifests.Select(m => m.Annotations?.GetValueOrDefault(Annotations.RefName)).OfType<string>();
        if (reference is null)
        {
            return manifests.Count == 1 ? Task.FromResult(manifests[0]) : throw ImageException.NoTag(Name, manifests.Count, tags);
        }
        var match = manifests.FirstOrDefault(m => m.Annotations?.GetValueOrDefault(Annotations.RefName) == reference);
        return match is not null ? Task.FromResult(match) : throw ImageException.NoSuchTag(Name, reference, tags);
    }

    /// <summary>Opens a blob, refusing one that is missing or whose size is not its descriptor's.</summary>
    public Task<Stream> OpenBlobAsync(Descriptor blob, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(blob);
        var file = System.IO.Path.Combine(Path, "blobs", "sha256", blob.Digest.Hex);
        FileStream stream;
        try
        {
            stream = new FileStream(file, new FileStreamOptions
            {
                Mode = FileMode.Open,
                Access = FileAccess.Read,
                Share = FileShare.Read | FileShare.Delete,
                Options = FileOptions.Asynchronous | FileOptions.SequentialScan,
            });
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            throw ImageException.MissingBlob(Name, blob.Digest);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw ImageException.Io(Name, $"opening blob {blob.Digest}", ex);
        }
        if (stream.Length != blob.Size)
        {
            long length = stream.Length;
            stream.Dispose();
            throw ImageException.WrongSize(Name, blob, length);
        }
        return Task.FromResult<Stream>(stream);
    }
}
