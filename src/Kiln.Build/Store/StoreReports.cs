using Kiln.Oci;

namespace Kiln.Build.Store;

public enum StoreProblemKind
{
    /// <summary>A blob's content does not hash to its name (corrupted or truncated).</summary>
    CorruptBlob,
    /// <summary>A referenced blob is absent.</summary>
    MissingBlob,
    /// <summary>A blob's size differs from the size its descriptor records.</summary>
    SizeMismatch,
    /// <summary>A manifest, config or index.json that cannot be parsed.</summary>
    InvalidDocument,
    /// <summary>The config's rootfs.diff_ids count differs from the manifest's layer count.</summary>
    DiffIdCountMismatch,
    /// <summary>A tagged image's extracted layer is absent.</summary>
    MissingSnapshot,
    /// <summary>A file in blobs/sha256 whose name is not a digest.</summary>
    StrayFile,
}

/// <summary>One problem found by <see cref="KilnStore.VerifyAsync"/>: what, which blob or path, and which tagged images it breaks.</summary>
public sealed record StoreProblem
{
    public required StoreProblemKind Kind { get; init; }
    public Digest? Digest { get; init; }
    public required string Path { get; init; }
    public required string Detail { get; init; }
    public IReadOnlyList<string> AffectedImages { get; init; } = [];

    public override string ToString() =>
        $"{Kind}: {Detail} ({Path})" + (AffectedImages.Count > 0 ? $"; affects {string.Join(", ", AffectedImages)}" : "");
}

public sealed record VerifyReport
{
    public required IReadOnlyList<StoreProblem> Problems { get; init; }
    public required int BlobsChecked { get; init; }
    public required int ImagesChecked { get; init; }
    public bool Ok => Problems.Count == 0;
}

public sealed record GcReport
{
    public int BlobsRemoved { get; init; }
    public long BlobBytesFreed { get; init; }
    public int SnapshotsRemoved { get; init; }
    public long SnapshotBytesFreed { get; init; }
    public int StepEntriesRemoved { get; init; }

    /// <summary>Kept disks (kiln/disks) dropped because their image is no longer tagged or its layers are gone.</summary>
    public int DisksRemoved { get; init; }

    /// <summary>Cached test results of images whose manifest is gone.</summary>
    public int TestResultsRemoved { get; init; }

    /// <summary>Artifacts (index entries without a name) whose subject image is no longer named.</summary>
    public int ReferrersRemoved { get; init; }
    public int BlobsKept { get; init; }
    public int SnapshotsKept { get; init; }
    public long BytesFreed => BlobBytesFreed + SnapshotBytesFreed;
}
