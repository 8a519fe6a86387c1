using Kiln.Oci;

namespace Kiln.Build.Store;

public sealed partial class KilnStore
{
    public Task<GcReport> CollectGarbageAsync(CancellationToken ct = default) => CollectGarbageAsync(pruneCache: false, ct);

    /// <summary>Under the exclusive store lock, deletes blobs and snapshots that no tag, no image root
    /// (<see cref="Roots"/>), no pin and no step cache entry references. With <paramref name="pruneCache"/>, first drops step cache entries whose layers are not a prefix
    /// of some tagged image's layers. Also drops records nothing can look up any more: test results and output
    /// stamps of images that are gone, and context-hash caches of build contexts that are gone. The caller must not
    /// hold the store lock itself.</summary>
    public async Task<GcReport> CollectGarbageAsync(bool pruneCache, CancellationToken ct = default)
    {
        using var storeLock = await FileLock.AcquireAsync(StoreLockPath, exclusive: true, ct).ConfigureAwait(false);

        var keepBlobs = new HashSet<Digest>();
        var keepSnapshots = new HashSet<Digest>();
        var taggedLayers = new List<IReadOnlyList<Descriptor>>();
        var taggedNames = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, desc) in Names.ListTags())
        {
            taggedNames.Add(name);
            ct.ThrowIfCancellationRequested();
            Manifest manifest;
            ImageConfig config;
            try
            {
                (manifest, config) = await Content.ReadImageAsync(desc.Digest, ct).ConfigureAwait(false);
            }
            catch (StoreException e)
            {
                // Without the manifest we cannot know what it needs; deleting blindly could destroy the only copy.
                throw new StoreException($"garbage collection stopped: image '{name}' cannot be read ({e.Message}); untag or rebuild it, then run gc again", e);
            }
            keepBlobs.Add(desc.Digest);
            keepBlobs.Add(manifest.Config.Digest);
            keepBlobs.UnionWith(manifest.Layers.Select(l => l.Digest));
            keepSnapshots.UnionWith(config.RootFs.DiffIds);
            taggedLayers.Add(manifest.Layers);
        }

        // Rooted images (a release serving a digest whose name moved on) are kept as tagged ones are. One whose
        // manifest is gone has nothing left to keep; one that cannot be read stops gc as a tag's does.
        var rooted = new HashSet<Digest>();
        foreach (var (name, digest) in Roots.All())
        {
            ct.ThrowIfCancellationRequested();
            if (!Content.HasBlob(digest) || !rooted.Add(digest))
            {
                continue;
            }
            Manifest manifest;
            ImageConfig config;
            try
            {
                (manifest, config) = await Content.ReadImageAsync(digest, ct).ConfigureAwait(false);
            }
            catch (StoreException e)
            {
                throw new StoreException($"garbage collection stopped: image {digest} kept by '{name}' cannot be read ({e.Message})", e);
            }
            keepBlobs.Add(digest);
            keepBlobs.Add(manifest.Config.Digest);
            keepBlobs.UnionWith(manifest.Layers.Select(l => l.Digest));
            keepSnapshots.UnionWith(config.RootFs.DiffIds);
            taggedLayers.Add(manifest.Layers);
        }

        // Artifacts that refer to an image (index entries without a name) live as long as their subject is kept.
        var taggedManifests = Names.ListTags().Select(t => t.Manifest.Digest).ToHashSet();
        taggedManifests.UnionWith(rooted);
        var orphans = new HashSet<Digest>();
        foreach (var referrer in Names.ListUntagged())
        {
            var kept = await ReferrerBlobsAsync(referrer.Digest, taggedManifests, ct).ConfigureAwait(false);
            if (kept is null)
            {
                orphans.Add(referrer.Digest);
            }
            else
            {
                keepBlobs.UnionWith(kept);
            }
        }
        int referrersRemoved = orphans.Count == 0 ? 0 : await Names.RemoveUntaggedAsync(d => orphans.Contains(d.Digest), ct).ConfigureAwait(false);

        int stepsRemoved = StepCache.RemoveWhere(
            state => state is null || (pruneCache && !taggedLayers.Any(t => IsPrefix(state.Layers, t))),
            state =>
            {
                keepBlobs.UnionWith(state.Layers.Select(l => l.Digest));
                keepSnapshots.UnionWith(state.Config.RootFs.DiffIds);
            },
            bestEffort: false, ct);

        keepBlobs.UnionWith(Pins.All());

        int disksRemoved = CollectDisks(taggedNames, keepSnapshots);

        var (blobsRemoved, blobsKept, blobBytes) = Content.Sweep(keepBlobs, ct);

        var (snapsRemoved, snapsKept, snapBytes) = Snapshots.Sweep(
            keepSnapshots, d => Path.Combine(_tmpDir, $"{_pid}-gc-{d.Short}-{RandomSuffix()}"), ct);

        int resultsRemoved = ImageRecords(TestResultsFolder).Collect(Content);
        ImageRecords(OutputStampsFolder).Collect(Content);
        ImageRecords(PairsFolder).Collect(Content);
        ImageRecords(MinimizeReportsFolder).Collect(Content);
        ImageRecords(MinimizeRecordingsFolder).Collect(Content);
        foreach (var stale in ContextHashCache.Stale(Root))
        {
            File.Delete(stale);
        }

        return new GcReport
        {
            TestResultsRemoved = resultsRemoved,
            ReferrersRemoved = referrersRemoved,
            BlobsRemoved = blobsRemoved,
            BlobBytesFreed = blobBytes,
            BlobsKept = blobsKept,
            SnapshotsRemoved = snapsRemoved,
            SnapshotBytesFreed = snapBytes,
            SnapshotsKept = snapsKept,
            StepEntriesRemoved = stepsRemoved,
            DisksRemoved = disksRemoved,
        };
    }

    /// <summary>The blobs of the artifact manifest <paramref name="digest"/> when its subject is among
    /// <paramref name="subjects"/>; null when it is not, or the manifest cannot be read (nothing can find it again).</summary>
    private async Task<IReadOnlyList<Digest>?> ReferrerBlobsAsync(Digest digest, HashSet<Digest> subjects, CancellationToken ct)
    {
        try
        {
            var bytes = await Content.ReadBlobAsync(digest, ct).ConfigureAwait(false);
            using var doc = System.Text.Json.JsonDocument.Parse(bytes);
            var root = doc.RootElement;
            if (!root.TryGetProperty("subject", out var subject) || !Digest.TryParse(subject.GetProperty("digest").GetString(), out var s)
                || !subjects.Contains(s))
            {
                return null;
            }
            var blobs = new List<Digest> { digest, Digest.Parse(root.GetProperty("config").GetProperty("digest").GetString()!) };
            blobs.AddRange(root.GetProperty("layers").EnumerateArray().Select(l => Digest.Parse(l.GetProperty("digest").GetString()!)));
            return blobs;
        }
        catch (Exception e) when (e is StoreException or System.Text.Json.JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            return null;
        }
    }

    private static bool IsPrefix(IReadOnlyList<Descriptor> prefix, IReadOnlyList<Descriptor> of) =>
        prefix.Count <= of.Count && prefix.Select(l => l.Digest).SequenceEqual(of.Take(prefix.Count).Select(l => l.Digest));
}
