using System.Buffers;

namespace Kiln.Oci.Image;

/// <summary>Copies a blob's bytes to where a sink stages them, checking on the way that there are exactly as many
/// as its descriptor says and, unless the destination hashes them itself, that they hash to its digest.</summary>
public static class BlobCopy
{
    /// <param name="where">Names the sink in messages.</param>
    /// <param name="checkDigest">False when <paramref name="destination"/> checks the digest itself (the store's
    /// blob writer), so the bytes are hashed once.</param>
    /// <exception cref="ImageException">Too few or too many bytes, or another digest.</exception>
    public static async Task CopyAsync(Stream content, Stream destination, Descriptor blob, string where, bool checkDigest = true,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(content);
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentNullException.ThrowIfNull(blob);
        using var hash = checkDigest ? new Sha256Hasher() : null;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            long total = 0;
            int n;
            while ((n = await content.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
            {
                total += n;
                // Refused as soon as it runs over: a source that never ends fills no disk.
                if (total > blob.Size)
                {
                    throw ImageException.SizeMismatch(where, blob, total);
                }
                hash?.AppendData(buffer.AsSpan(0, n));
                await destination.WriteAsync(buffer.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
            }
            if (total != blob.Size)
            {
                throw ImageException.SizeMismatch(where, blob, total);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        if (hash is not null)
        {
            var actual = Digest.FromHash(hash.GetHashAndReset());
            if (actual != blob.Digest)
            {
                throw ImageException.Mismatch(where, blob, actual);
            }
        }
    }
}
