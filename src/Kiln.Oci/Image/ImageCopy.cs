namespace Kiln.Oci.Image;

/// <summary>How <see cref="ImageCopier"/> copies.</summary>
public sealed record ImageCopyOptions
{
    /// <summary>When the descriptor names an index, copy only the image for this platform (and write no index);
    /// null copies the index with every image it lists.</summary>
    public Platform? Platform { get; init; }

    /// <summary>The name the copy gets in the sink (a tag); null leaves it unnamed.</summary>
    public string? Name { get; init; }

    /// <summary>How many blobs are copied at once (a sequential sink takes one at a time whatever this says).</summary>
    public int Parallelism { get; init; } = 4;
}

public enum ImageCopyEventKind
{
    /// <summary>A blob's copy begins; <see cref="ImageCopyEvent.Bytes"/> is 0.</summary>
    Started,

    /// <summary>Bytes of a blob copied so far.</summary>
    Progress,

    /// <summary>A blob is copied whole; <see cref="ImageCopyEvent.Bytes"/> is its size.</summary>
    Copied,

    /// <summary>The sink had the blob already.</summary>
    Skipped,

    /// <summary>The sink took the blob from another of its repositories.</summary>
    Mounted,

    /// <summary>A manifest or index is written.</summary>
    ManifestWritten,
}

/// <summary>One step of a copy, for progress displays.</summary>
public sealed record ImageCopyEvent(ImageCopyEventKind Kind, Descriptor Descriptor, long Bytes);

/// <summary>What a copy did.</summary>
public sealed record ImageCopySummary
{
    /// <summary>The manifest or index written at the top (the selected manifest when a platform was given).</summary>
    public required Descriptor Root { get; init; }

    public long BytesCopied { get; init; }

    public int BlobsCopied { get; init; }

    public int BlobsSkipped { get; init; }

    public int BlobsMounted { get; init; }

    public int ManifestsWritten { get; init; }
}
