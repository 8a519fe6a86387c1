using Kiln.Build.Store;

namespace Kiln.Build.Tests.Store;

public sealed class KilnStoreRepairTests
{
    private const string KeyA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    private const string KeyB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    [Fact]
    public async Task Repair_removes_a_corrupt_blob_and_every_cache_entry_that_needs_it_and_names_the_image()
    {
        using var t = new TestStore();
        var a = await t.AddLayerAsync(TestStore.Empty, "a", "a");
        var b = await t.AddLayerAsync(a, "b", "b");
        await t.Store.StepCache.PutAsync(KeyA, a);
        await t.Store.StepCache.PutAsync(KeyB, b);
        await t.Store.Names.TagAsync("img", await t.Store.Content.WriteImageAsync(b));
        var blob = t.Store.Content.BlobPath(a.Layers[0].Digest);
        var bytes = File.ReadAllBytes(blob);
        bytes[^1] ^= 1;
        File.WriteAllBytes(blob, bytes);
        Assert.NotNull(t.Store.StepCache.TryGet(KeyA)); // the cache alone cannot tell: only a re-hash can

        var report = await t.Store.RepairAsync();
        Assert.False(report.Found.Ok);
        Assert.Equal(1, report.BlobsRemoved);
        Assert.Equal(2, report.StepEntriesRemoved);
        Assert.Equal(["img"], report.ImagesToRebuild);
        Assert.False(File.Exists(blob));
        Assert.Null(t.Store.StepCache.TryGet(KeyA));
        Assert.Null(t.Store.StepCache.TryGet(KeyB));
        Assert.Contains((await t.Store.VerifyAsync()).Problems, p => p.Kind == StoreProblemKind.MissingBlob && p.AffectedImages.Contains("img"));
    }

    [Fact]
    public async Task Repair_removes_a_non_directory_in_place_of_a_snapshot_and_the_entries_that_need_it()
    {
        using var t = new TestStore();
        var a = await t.AddLayerAsync(TestStore.Empty, "a", "a");
        await t.Store.StepCache.PutAsync(KeyA, a);
        var snapshot = t.Store.Snapshots.SnapshotPath(a.Config.RootFs.DiffIds[0]);
        Directory.Delete(snapshot, recursive: true);
        File.WriteAllText(snapshot, "junk");

        var report = await t.Store.RepairAsync();
        Assert.Equal((0, 1, 1), (report.BlobsRemoved, report.SnapshotsRemoved, report.StepEntriesRemoved));
        Assert.False(File.Exists(snapshot));
        // A new snapshot of that layer can be committed again.
        var prepared = t.Store.CreateTempDir("snapshot");
        File.WriteAllText(Path.Combine(prepared, "a"), "a");
        t.Store.Snapshots.CommitSnapshot(prepared, a.Config.RootFs.DiffIds[0]);
        Assert.True(t.Store.Snapshots.HasSnapshot(a.Config.RootFs.DiffIds[0]));
    }

    [Fact]
    public async Task Repair_of_a_healthy_store_removes_nothing()
    {
        using var t = new TestStore();
        var a = await t.AddLayerAsync(TestStore.Empty, "a", "a");
        await t.Store.StepCache.PutAsync(KeyA, a);
        await t.Store.Names.TagAsync("img", await t.Store.Content.WriteImageAsync(a));
        var report = await t.Store.RepairAsync();
        Assert.True(report.Found.Ok);
        Assert.Equal((0, 0, 0), (report.BlobsRemoved, report.SnapshotsRemoved, report.StepEntriesRemoved));
        Assert.NotNull(t.Store.StepCache.TryGet(KeyA));
    }
}
