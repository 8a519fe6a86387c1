using Kiln.Oci;

namespace Kiln.Build.Store;

/// <summary>What <see cref="KilnStore.RepairAsync"/> found and dropped.</summary>
public sealed record RepairReport
{
    /// <summary>The problems found before repairing.</summary>
    public required VerifyReport Found { get; init; }
    public int BlobsRemoved { get; init; }
    public int SnapshotsRemoved { get; init; }
    public int StepEntriesRemoved { get; init; }

    /// <summary>Tagged images that are still broken and need a build (which rebuilds what was dropped).</summary>
    public IReadOnlyList<string> ImagesToRebuild { get; init; } = [];
}

public sealed partial class KilnStore
{
    /// <summary>Under the exclusive store lock: removes corrupt blobs and broken snapshots (a non-directory where a
    /// snapshot should be), and drops every step cache entry that is unreadable or needs a blob or snapshot that is
    /// missing or was removed, so the next build runs those steps again instead of reusing a broken result. Tags
    /// are kept: a broken image is repaired by building it again.</summary>
    public async Task<RepairReport> RepairAsync(CancellationToken ct = default)
    {
        using var storeLock = await FileLock.AcquireAsync(StoreLockPath, exclusive: true, ct).ConfigureAwait(false);
        var found = await VerifyAsync(ct).ConfigureAwait(false);

        int blobsRemoved = Content.Remove(
            found.Problems.Where(p => p.Kind == StoreProblemKind.CorruptBlob && p.Digest is not null).Select(p => p.Digest!.Value));

        int snapshotsRemoved = Snapshots.RemoveBroken();

        int stepsRemoved = StepCache.RemoveIncomplete(ct);

        return new RepairReport
        {
            Found = found,
            BlobsRemoved = blobsRemoved,
            SnapshotsRemoved = snapshotsRemoved,
            StepEntriesRemoved = stepsRemoved,
            ImagesToRebuild = found.Problems.SelectMany(p => p.AffectedImages).Distinct().Order(StringComparer.Ordinal).ToList(),
        };
    }
}
