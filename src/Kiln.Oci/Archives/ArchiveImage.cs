namespace Kiln.Oci.Archives;

/// <summary>An image to write into an archive: its manifest descriptor and a way to open any of its blobs. The
/// writers know nothing of where blobs live; each blob is read once, checked against its digest as it is copied.</summary>
public sealed record ArchiveImage
{
    /// <summary>The image manifest (OCI or Docker schema 2).</summary>
    public required Descriptor Manifest { get; init; }

    /// <summary>Opens a blob (manifest, config or layer) by digest for reading; the caller's stream is disposed by the writer.</summary>
    public required Func<Digest, Stream> OpenBlob { get; init; }
}

/// <summary>How an archive is written.</summary>
public sealed record ArchiveOptions
{
    /// <summary>The mtime of every entry of the outer tar (SOURCE_DATE_EPOCH), so that two writes are byte-identical.</summary>
    public DateTimeOffset Epoch { get; init; } = DateTimeOffset.UnixEpoch;
}
