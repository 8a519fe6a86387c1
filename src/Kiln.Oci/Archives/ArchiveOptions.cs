namespace Kiln.Oci.Archives;

/// <summary>How an archive is written.</summary>
public sealed record ArchiveOptions
{
    /// <summary>The mtime of every entry of the outer tar (SOURCE_DATE_EPOCH), so that two writes are byte-identical.</summary>
    public DateTimeOffset Epoch { get; init; } = DateTimeOffset.UnixEpoch;
}
