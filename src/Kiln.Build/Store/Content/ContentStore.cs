using Kiln.Oci;

namespace Kiln.Build.Store.Content;

/// <summary>The store's content: blobs named by their digest in <c>blobs/sha256/</c>, written through the ingest area
/// and renamed into place once their digest is checked, so a blob that is there is always complete. Holds manifests,
/// configs and layers alike; what names or needs them is the business of the other parts of the store.</summary>
public sealed partial class ContentStore
{
    private readonly Func<string> _newIngestPath;

    internal ContentStore(string blobsDir, Func<string> newIngestPath)
    {
        BlobsDir = blobsDir;
        _newIngestPath = newIngestPath;
    }

    public string BlobsDir { get; }

    /// <summary>Starts writing a blob into the ingest area; commit it with <see cref="BlobWriter.CommitAsync"/>.</summary>
    /// <param name="checkedBy">The stream the blob is copied from, if it checks the bytes itself (a registry download):
    /// the writer then does not hash them a second time, and commits only once that stream has checked them all.</param>
    public BlobWriter CreateBlobWriter(Kiln.Oci.Image.IVerifiedBlobStream? checkedBy = null)
    {
        try
        {
            return new BlobWriter(this, _newIngestPath(), checkedBy);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw StoreException.Io("creating an ingest file", e);
        }
    }

    public async Task<Descriptor> WriteBlobAsync(ReadOnlyMemory<byte> bytes, string mediaType, CancellationToken ct = default)
    {
        var digest = Digest.Compute(bytes.Span);
        if (HasBlob(digest))
        {
            return new Descriptor { MediaType = mediaType, Digest = digest, Size = bytes.Length };
        }
        var writer = CreateBlobWriter();
        await using (writer.ConfigureAwait(false))
        {
            await writer.WriteAsync(bytes, ct).ConfigureAwait(false);
            return await writer.CommitAsync(mediaType, digest, ct).ConfigureAwait(false);
        }
    }

    /// <summary>The path of a blob (which may not exist). The digest type is validated, so the path stays in the store.</summary>
    public string BlobPath(Digest d) => Path.Combine(BlobsDir, CheckDigest(d).Hex);

    public bool HasBlob(Digest d) => File.Exists(BlobPath(d));

    public Stream OpenBlob(Digest d)
    {
        try
        {
            return new FileStream(BlobPath(d), new FileStreamOptions
            {
                Mode = FileMode.Open,
                Access = FileAccess.Read,
                Share = FileShare.Read | FileShare.Delete,
                Options = FileOptions.Asynchronous | FileOptions.SequentialScan,
            });
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw StoreException.BlobNotFound(d);
        }
    }

    /// <summary>Reads a whole blob and checks that its content matches its digest.</summary>
    public async Task<byte[]> ReadBlobAsync(Digest d, CancellationToken ct = default)
    {
        byte[] bytes;
        try
        {
            bytes = await File.ReadAllBytesAsync(BlobPath(d), ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw StoreException.BlobNotFound(d);
        }
        var actual = Digest.Compute(bytes);
        if (actual != d)
        {
            throw StoreException.CorruptBlob(d, actual);
        }
        return bytes;
    }

    /// <summary>Renames a verified ingest file into <c>blobs/sha256/</c>; an existing blob wins.</summary>
    internal void MoveIngestToBlob(string ingestPath, Digest digest)
    {
        var target = BlobPath(digest);
        if (File.Exists(target))
        {
            StoreFs.TryDeleteFile(ingestPath);
            return;
        }
        // rename(2): atomic; a concurrent writer of the same digest renames identical content.
        File.Move(ingestPath, target, overwrite: true);
        Native.FsyncDirectory(BlobsDir);
    }

    // ---- store-wide operations (verify, gc, repair) ----

    /// <summary>Every file in <c>blobs/sha256/</c>, in ordinal order, with its digest, or null when its name is not one
    /// (not ours to judge: verify reports it, gc leaves it).</summary>
    internal IEnumerable<(string Path, Digest? Digest)> ListBlobFiles() =>
        Directory.EnumerateFiles(BlobsDir).Order(StringComparer.Ordinal)
            .Select(f => (f, Digest.TryParse(Digest.Sha256Prefix + Path.GetFileName(f), out var d) ? d : (Digest?)null));

    /// <summary>Deletes every blob not in <paramref name="keep"/> (under the exclusive store lock).</summary>
    internal (int Removed, int Kept, long BytesFreed) Sweep(HashSet<Digest> keep, CancellationToken ct)
    {
        int removed = 0, kept = 0;
        long bytes = 0;
        foreach (var file in Directory.EnumerateFiles(BlobsDir).ToList())
        {
            ct.ThrowIfCancellationRequested();
            if (!Digest.TryParse(Digest.Sha256Prefix + Path.GetFileName(file), out var d))
            {
                continue; // not ours to judge; verify reports it
            }
            if (keep.Contains(d))
            {
                kept++;
                continue;
            }
            long size = new FileInfo(file).Length;
            File.Delete(file);
            removed++;
            bytes += size;
        }
        if (removed > 0)
        {
            Native.FsyncDirectory(BlobsDir);
        }
        return (removed, kept, bytes);
    }

    /// <summary>Deletes blobs (corrupt ones, under the exclusive store lock): a later write of the same digest keeps an
    /// existing file, so a corrupt blob must go before it can be written again.</summary>
    internal int Remove(IEnumerable<Digest> digests)
    {
        int removed = 0;
        foreach (var d in digests)
        {
            StoreFs.TryDeleteFile(BlobPath(d));
            removed++;
        }
        if (removed > 0)
        {
            Native.FsyncDirectory(BlobsDir);
        }
        return removed;
    }

    /// <summary>Rejects the default (unset) digest, whose Hex would not be a valid path component.</summary>
    internal static Digest CheckDigest(Digest d)
    {
        if (d.Value is null)
        {
            throw StoreException.InvalidDigest("", "empty (default) digest");
        }
        return d;
    }

    /// <summary>Parses a digest from text (e.g. a user argument), refusing anything but sha256:64-lowercase-hex.</summary>
    public static Digest ParseDigest(string text) =>
        Digest.TryParse(text, out var d, out var problem) ? d : throw StoreException.InvalidDigest(text, problem);
}
