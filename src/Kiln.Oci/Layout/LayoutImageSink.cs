using Kiln.Oci.Image;

namespace Kiln.Oci.Layout;

/// <summary>Writes images into an OCI image layout directory, creating it if need be. A blob is written to an
/// ingest file beside <c>blobs/</c> and renamed into <c>blobs/sha256/</c> only once its size and digest are
/// checked; <c>index.json</c> is replaced by rename, so a reader sees the old one or the new one.</summary>
/// <remarks>One writer at a time: two processes tagging the same layout at once may lose one of the tags.</remarks>
public sealed class LayoutImageSink : IImageSink
{
    private readonly string _blobs;

    public LayoutImageSink(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Path = path;
        _blobs = System.IO.Path.Combine(path, "blobs", "sha256");
        try
        {
            Directory.CreateDirectory(_blobs);
            var layoutFile = System.IO.Path.Combine(path, "oci-layout");
            if (!File.Exists(layoutFile))
            {
                WriteAtomically(layoutFile, OciJson.Serialize(new OciLayoutFile()));
            }
            var index = System.IO.Path.Combine(path, "index.json");
            if (!File.Exists(index))
            {
                WriteAtomically(index, OciJson.Serialize(new ImageIndex { Manifests = [] }));
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw ImageException.Io(Name, "creating the layout", ex);
        }
    }

    public string Path { get; }

    public string Name => "oci:" + Path;

    public Task<bool> HasBlobAsync(Descriptor blob, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(blob);
        var info = new FileInfo(BlobPath(blob.Digest));
        return Task.FromResult(info.Exists && info.Length == blob.Size);
    }

    public async Task WriteBlobAsync(Descriptor blob, Stream content, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(blob);
        ArgumentNullException.ThrowIfNull(content);
        var ingest = IngestPath();
        try
        {
            var file = new FileStream(ingest, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous);
            await using (file.ConfigureAwait(false))
            {
                await BlobCopy.CopyAsync(content, file, blob, Name, checkDigest: true, cancellationToken).ConfigureAwait(false);
                await file.FlushAsync(cancellationToken).ConfigureAwait(false);
                file.Flush(flushToDisk: true);
            }
            File.Move(ingest, BlobPath(blob.Digest), overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw ImageException.Io(Name, $"writing blob {blob.Digest}", ex);
        }
        finally
        {
            TryDelete(ingest);
        }
    }

    public Task WriteManifestAsync(Descriptor manifest, ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        if (bytes.Length != manifest.Size)
        {
            throw ImageException.WrongSize(Name, manifest, bytes.Length);
        }
        var actual = Digest.Compute(bytes.Span);
        if (actual != manifest.Digest)
        {
            throw ImageException.Mismatch(Name, manifest, actual);
        }
        try
        {
            if (!File.Exists(BlobPath(manifest.Digest)))
            {
                WriteAtomically(BlobPath(manifest.Digest), bytes.Span);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw ImageException.Io(Name, $"writing manifest {manifest.Digest}", ex);
        }
        return Task.CompletedTask;
    }

    /// <summary>Points <paramref name="name"/> at <paramref name="manifest"/> in <c>index.json</c>, replacing the entry
    /// that had it. Entries stay sorted by name, then digest, so equal contents give equal bytes.</summary>
    public Task TagAsync(string name, Descriptor manifest, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(manifest);
        if (!File.Exists(BlobPath(manifest.Digest)))
        {
            throw ImageException.MissingBlob(Name, manifest.Digest);
        }
        var index = new LayoutImageSource(Path).ReadIndex();
        var annotations = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (k, v) in manifest.Annotations ?? new Dictionary<string, string>())
        {
            annotations[k] = v;
        }
        annotations[Annotations.RefName] = name;
        var list = index.Manifests.Where(m => RefName(m) != name).Append(manifest with { Annotations = annotations }).ToList();
        list.Sort((a, b) =>
        {
            int byName = string.CompareOrdinal(RefName(a), RefName(b));
            return byName != 0 ? byName : string.CompareOrdinal(a.Digest.Value, b.Digest.Value);
        });
        try
        {
            WriteAtomically(System.IO.Path.Combine(Path, "index.json"), OciJson.Serialize(index with { Manifests = list }));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw ImageException.Io(Name, "writing index.json", ex);
        }
        return Task.CompletedTask;
    }

    private static string? RefName(Descriptor d) => d.Annotations?.GetValueOrDefault(Annotations.RefName);

    private string BlobPath(Digest digest) => System.IO.Path.Combine(_blobs, digest.Hex);

    // Beside blobs/ rather than in it: a reader listing blobs/sha256 never meets a half-written file.
    private string IngestPath() => System.IO.Path.Combine(Path, ".ingest-" + Guid.NewGuid().ToString("N"));

    private void WriteAtomically(string target, ReadOnlySpan<byte> bytes)
    {
        var ingest = IngestPath();
        try
        {
            using (var file = new FileStream(ingest, FileMode.CreateNew, FileAccess.Write))
            {
                file.Write(bytes);
                file.Flush(flushToDisk: true);
            }
            File.Move(ingest, target, overwrite: true);
        }
        finally
        {
            TryDelete(ingest);
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Best effort: an ingest file left behind names nothing.
        }
    }
}
