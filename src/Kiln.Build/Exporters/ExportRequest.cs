using Kiln.Build.Execution;
using Kiln.Build.Store;
using Kiln.Oci;

namespace Kiln.Build.Exporters;

/// <summary>What to write: one stored image, in one format, to one path.</summary>
public sealed record ExportRequest
{
    /// <summary>The image's name (used for archive tags and default file names).</summary>
    public required string ImageName { get; init; }

    /// <summary>The image's manifest in the store.</summary>
    public required Descriptor Manifest { get; init; }

    public required ExportFormat Format { get; init; }

    /// <summary>The file to write. It appears only when complete (written beside it, then renamed).</summary>
    public required string OutputPath { get; init; }

    /// <summary>Disk formats: the disk's size in bytes; null means used space plus headroom.</summary>
    public long? DiskSizeBytes { get; init; }

    /// <summary>Disk formats: build from the previous disk of an ancestor image when only top layers differ.</summary>
    public bool AllowIncremental { get; init; } = true;

    /// <summary>qcow2: the <see cref="Store.DiskCacheEntry.ContentId"/> of the kept disk that the file at
    /// <see cref="OutputPath"/> was written from, as the output's stamp says (the file unchanged since). When the new
    /// disk is that disk with a few ranges rewritten, only those ranges are written into the file, in place.</summary>
    public string? OutputHoldsDisk { get; init; }

    /// <summary>Timestamps written into archive headers (SOURCE_DATE_EPOCH).</summary>
    public DateTimeOffset Epoch { get; init; } = DateTimeOffset.UnixEpoch;

    /// <summary>Vagrant boxes: how the layers the box adds to the image are made (scratch space, compression, cache);
    /// their times are clamped to <see cref="Epoch"/>.</summary>
    public BuildOptions StepOptions { get; init; } = new();
}

/// <summary>What an export wrote.</summary>
public sealed record ExportResult
{
    public required string OutputPath { get; init; }
    public required ExportFormat Format { get; init; }
    public required long Bytes { get; init; }

    /// <summary>Disk formats: true when the disk was made from a previous disk by applying only changed layers.</summary>
    public bool Incremental { get; init; }

    /// <summary>Disk formats: how the disk was made, e.g. why it was built in full rather than incrementally.</summary>
    public string? Detail { get; init; }

    /// <summary>qcow2: the file written before was updated in place with only the ranges the disk update wrote.</summary>
    public bool Patched { get; init; }

    /// <summary>The bytes of disk content written to the output: the whole disk's data, or the patched ranges.</summary>
    public long BytesWritten { get; init; }

    /// <summary>Disk formats: the <see cref="Store.DiskCacheEntry.ContentId"/> of the kept disk the output now holds.</summary>
    public string? DiskContentId { get; init; }

    public TimeSpan Elapsed { get; init; }
}

/// <summary>Progress of a long export, for the CLI to show.</summary>
public sealed record ExportEvent(string Image, ExportFormat Format, string Message);
