namespace Kiln.Oci.Image;

/// <summary>Finds the image manifest for a platform behind a descriptor that names a manifest or an index (OCI image
/// index or Docker manifest list), following nested indexes. Sources differ only in how they read a document, which
/// the caller passes in.</summary>
public static class IndexSelection
{
    /// <summary>How many indexes may stand between a tag and its manifest (a layout's index.json not counted).</summary>
    public const int MaxDepth = 8;

    /// <summary>The largest manifest, index or config read whole.</summary>
    public const long MaxDocumentBytes = 4 << 20;

    /// <summary>Follows <paramref name="top"/> to an image manifest: itself if it is one, else the entry of each index
    /// on the way that fits <paramref name="platform"/> best.</summary>
    /// <param name="readDocument">Returns a descriptor's document (see <see cref="ReadDocument"/>).</param>
    /// <param name="where">Names the source in messages.</param>
    /// <exception cref="ImageException">No entry fits, a document is not what its descriptor says, or nesting is too deep.</exception>
    public static Descriptor Resolve(Descriptor top, Platform platform, Func<Descriptor, byte[]> readDocument, string where)
    {
        ArgumentNullException.ThrowIfNull(readDocument);
        // The reader is synchronous, so the task has completed when it returns.
        return ResolveAsync(top, platform, (d, _) => Task.FromResult(readDocument(d)), where).GetAwaiter().GetResult();
    }

    /// <summary>As <see cref="Resolve"/>, for sources that read documents asynchronously.</summary>
    public static async Task<Descriptor> ResolveAsync(Descriptor top, Platform platform,
        Func<Descriptor, CancellationToken, Task<byte[]>> readDocument, string where, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(top);
        ArgumentNullException.ThrowIfNull(platform);
        ArgumentNullException.ThrowIfNull(readDocument);
        var current = top;
        for (int depth = 0; ; depth++)
        {
            if (MediaTypes.IsManifest(current.MediaType))
            {
                return current;
            }
            if (!MediaTypes.IsIndex(current.MediaType))
            {
                throw ImageException.NotAnImage(where, current);
            }
            if (depth == MaxDepth)
            {
                throw ImageException.TooDeep(where, MaxDepth);
            }
            var index = ParseIndex(await readDocument(current, cancellationToken).ConfigureAwait(false), current, where);
            current = Select(index, current, platform, where);
        }
    }

    /// <summary>Parses an index read for <paramref name="descriptor"/>.</summary>
    public static ImageIndex ParseIndex(byte[] bytes, Descriptor descriptor, string where)
    {
        try
        {
            return OciJson.DeserializeIndex(bytes);
        }
        catch (System.Text.Json.JsonException ex)
        {
            throw ImageException.BadDocument(where, "index", descriptor, ex);
        }
    }

    /// <summary>The entry of <paramref name="index"/> (whose descriptor is <paramref name="indexDescriptor"/>) that fits
    /// <paramref name="platform"/> best: the highest fitting variant, the first listed among equals. An entry without
    /// a platform fits any, below every entry whose platform fits; entries that are neither manifests nor indexes
    /// (attestations, signatures, other artifacts) are passed over.</summary>
    public static Descriptor Select(ImageIndex index, Descriptor indexDescriptor, Platform platform, string where)
    {
        ArgumentNullException.ThrowIfNull(index);
        ArgumentNullException.ThrowIfNull(indexDescriptor);
        ArgumentNullException.ThrowIfNull(platform);
        Descriptor? best = null;
        int bestFit = int.MinValue;
        foreach (var entry in index.Manifests)
        {
            if (!MediaTypes.IsManifest(entry.MediaType) && !MediaTypes.IsIndex(entry.MediaType))
            {
                continue;
            }
            int? fit = entry.Platform is { } p ? platform.Fit(p) : -1;
            if (fit is { } f && f > bestFit)
            {
                (best, bestFit) = (entry, f);
            }
        }
        return best ?? throw ImageException.NoPlatform(where, indexDescriptor, platform,
            index.Manifests.Where(m => MediaTypes.IsManifest(m.MediaType) || MediaTypes.IsIndex(m.MediaType))
                .Select(m => m.Platform?.ToString()).OfType<string>());
    }

    /// <summary>Reads a manifest, index or config whole from <paramref name="open"/> and checks it against its
    /// descriptor: at most <see cref="MaxDocumentBytes"/>, and its digest.</summary>
    public static byte[] ReadDocument(Descriptor descriptor, Func<Descriptor, Stream> open, string where)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        ArgumentNullException.ThrowIfNull(open);
        if (descriptor.Size is < 0 or > MaxDocumentBytes)
        {
            throw ImageException.TooLarge(where, descriptor, MaxDocumentBytes);
        }
        var bytes = new byte[descriptor.Size];
        using (var stream = open(descriptor))
        {
            stream.ReadExactly(bytes);
        }
        var actual = Digest.Compute(bytes);
        return actual == descriptor.Digest ? bytes : throw ImageException.Mismatch(where, descriptor, actual);
    }

    /// <summary>As <see cref="ReadDocument"/>, for sources that open streams asynchronously. A stream shorter than
    /// the descriptor says is refused as a size mismatch.</summary>
    public static async Task<byte[]> ReadDocumentAsync(Descriptor descriptor, Func<Descriptor, CancellationToken, Task<Stream>> open,
        string where, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        ArgumentNullException.ThrowIfNull(open);
        if (descriptor.Size is < 0 or > MaxDocumentBytes)
        {
            throw ImageException.TooLarge(where, descriptor, MaxDocumentBytes);
        }
        var bytes = new byte[descriptor.Size];
        var stream = await open(descriptor, cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            int read = await stream.ReadAtLeastAsync(bytes, bytes.Length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
            if (read < bytes.Length)
            {
                throw ImageException.SizeMismatch(where, descriptor, read);
            }
        }
        var actual = Digest.Compute(bytes);
        return actual == descriptor.Digest ? bytes : throw ImageException.Mismatch(where, descriptor, actual);
    }
}
