using Kiln.Oci;

namespace Kiln.Build.Store;

public sealed partial class KilnStore
{
    /// <summary>Starts writing a blob into the ingest area; commit it with <see cref="BlobWriter.CommitAsync"/>.</summary>
    public BlobWriter CreateBlobWriter()
    {
        try
        {
            return new BlobWriter(this, NewIngestPath());
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

    /// <summary>Rejects the default (unset) digest, whose Hex would not be a valid path component.</summary>
    private static Digest CheckDigest(Digest d)
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
