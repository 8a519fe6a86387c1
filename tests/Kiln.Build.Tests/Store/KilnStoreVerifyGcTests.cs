using Kiln.Build.Store;
using Kiln.Oci;

namespace Kiln.Build.Tests.Store;

public sealed class KilnStoreVerifyGcTests
{
    [Fact]
    public async Task Verify_passes_on_a_healthy_store()
    {
        using var t = new TestStore();
        var state = await t.AddLayerAsync(TestStore.Empty, "a", "a");
        await t.Store.Names.TagAsync("web", await t.Store.Content.WriteImageAsync(state));
        var report = await t.Store.VerifyAsync();
        Assert.True(report.Ok, string.Join("\n", report.Problems));
        Assert.Equal(1, report.ImagesChecked);
        Assert.Equal(3, report.BlobsChecked);
    }

    [Fact]
    public async Task Verify_finds_truncated_corrupted_and_missing_blobs_and_names_the_affected_image()
    {
        using var t = new TestStore();
        var state = await t.AddLayerAsync(TestStore.Empty, "a", "aaaaaaaa");
        state = await t.AddLayerAsync(state, "b", "bbbbbbbb");
        state = await t.AddLayerAsync(state, "c", "cccccccc");
        await t.Store.Names.TagAsync("web", await t.Store.Content.WriteImageAsync(state));
        await t.Store.Names.TagAsync("other", await t.Store.Content.WriteImageAsync(await t.AddLayerAsync(TestStore.Empty, "z", "z")));

        var truncated = state.Layers[0].Digest;
        var corrupted = state.Layers[1].Digest;
        var missing = state.Layers[2].Digest;
        var bytes = File.ReadAllBytes(t.Store.Content.BlobPath(truncated));
        File.WriteAllBytes(t.Store.Content.BlobPath(truncated), bytes[..(bytes.Length / 2)]);
        bytes = File.ReadAllBytes(t.Store.Content.BlobPath(corrupted));
        bytes[^1] ^= 0xff;
        File.WriteAllBytes(t.Store.Content.BlobPath(corrupted), bytes);
        File.Delete(t.Store.Content.BlobPath(missing));

        var report = await t.Store.VerifyAsync();

        Assert.False(report.Ok);
        AssertProblem(report, StoreProblemKind.CorruptBlob, truncated);
        AssertProblem(report, StoreProblemKind.SizeMismatch, truncated);
        AssertProblem(report, StoreProblemKind.CorruptBlob, corrupted);
        AssertProblem(report, StoreProblemKind.MissingBlob, missing);
        Assert.DoesNotContain(report.Problems, p => p.AffectedImages.Contains("other"));
    }

    [Fact]
    public async Task Verify_accepts_a_layer_not_yet_extracted_but_not_one_without_its_blob_or_with_a_file_for_a_snapshot()
    {
        using var t = new TestStore();
        var state = await t.AddLayerAsync(TestStore.Empty, "a", "a");
        state = await t.AddLayerAsync(state, "b", "b");
        await t.Store.Names.TagAsync("web", await t.Store.Content.WriteImageAsync(state));
        var (first, second) = (state.Config.RootFs.DiffIds[0], state.Config.RootFs.DiffIds[1]);
        Directory.Delete(t.Store.Snapshots.SnapshotPath(first), recursive: true);
        Directory.Delete(t.Store.Snapshots.SnapshotPath(second), recursive: true);
        // Blobs only, as a pull leaves an image: its layers are extracted on first use.
        var lazy = await t.Store.VerifyAsync();
        Assert.True(lazy.Ok, string.Join("\n", lazy.Problems));

        File.WriteAllText(t.Store.Snapshots.SnapshotPath(first), "not a snapshot");
        File.Delete(t.Store.Content.BlobPath(state.Layers[1].Digest));
        var report = await t.Store.VerifyAsync();
        AssertProblem(report, StoreProblemKind.MissingSnapshot, first);
        AssertProblem(report, StoreProblemKind.MissingSnapshot, second);
        AssertProblem(report, StoreProblemKind.MissingBlob, state.Layers[1].Digest);
    }

    [Fact]
    public async Task Gc_drops_test_results_of_images_that_are_gone_and_keeps_those_of_tagged_images()
    {
        using var t = new TestStore();
        var tagged = await t.Store.Content.WriteImageAsync(await t.AddLayerAsync(TestStore.Empty, "a", "a"));
        await t.Store.Names.TagAsync("web", tagged);
        var orphan = await t.Store.Content.WriteImageAsync(await t.AddLayerAsync(TestStore.Empty, "o", "orphan"));
        string Result(Descriptor m) => $$"""{"image":"x","manifest":"{{m.Digest}}","phase":"bake","passed":true,"checks":[]}""";
        await new Kiln.Build.Testing.TestResultStore(t.Store).WriteAsync(new string('1', 64), System.Text.Encoding.UTF8.GetBytes(Result(tagged)));
        await new Kiln.Build.Testing.TestResultStore(t.Store).WriteAsync(new string('2', 64), System.Text.Encoding.UTF8.GetBytes(Result(orphan)));
        await new Kiln.Build.Testing.TestResultStore(t.Store).WriteAsync(new string('3', 64), "{torn"u8.ToArray());

        var report = await t.Store.CollectGarbageAsync();

        Assert.Equal(2, report.TestResultsRemoved);
        Assert.NotNull(new Kiln.Build.Testing.TestResultStore(t.Store).TryRead(new string('1', 64)));
        Assert.Null(new Kiln.Build.Testing.TestResultStore(t.Store).TryRead(new string('2', 64)));
        Assert.Null(new Kiln.Build.Testing.TestResultStore(t.Store).TryRead(new string('3', 64)));
    }

    [Fact]
    public async Task Gc_removes_unreferenced_blobs_and_snapshots_and_keeps_referenced_ones()
    {
        using var t = new TestStore();
        var tagged = await t.AddLayerAsync(TestStore.Empty, "a", "a");
        var manifest = await t.Store.Content.WriteImageAsync(tagged);
        await t.Store.Names.TagAsync("web", manifest);
        var cached = await t.AddLayerAsync(TestStore.Empty, "cached", "cached");
        await t.Store.StepCache.PutAsync(new string('c', 64), cached);
        var orphan = await t.AddLayerAsync(TestStore.Empty, "orphan", "orphan content");
        var orphanImage = await t.Store.Content.WriteImageAsync(orphan);

        var report = await t.Store.CollectGarbageAsync();

        Assert.False(t.Store.Content.HasBlob(orphan.Layers[0].Digest));
        Assert.False(t.Store.Content.HasBlob(orphanImage.Digest));
        Assert.False(t.Store.Snapshots.HasSnapshot(orphan.Config.RootFs.DiffIds[0]));
        Assert.True(t.Store.Content.HasBlob(manifest.Digest));
        Assert.True(t.Store.Content.HasBlob(tagged.Layers[0].Digest));
        Assert.True(t.Store.Snapshots.HasSnapshot(tagged.Config.RootFs.DiffIds[0]));
        Assert.True(t.Store.Content.HasBlob(cached.Layers[0].Digest));
        Assert.True(t.Store.Snapshots.HasSnapshot(cached.Config.RootFs.DiffIds[0]));
        Assert.NotNull(t.Store.StepCache.TryGet(new string('c', 64)));
        Assert.Equal(3, report.BlobsRemoved); // orphan layer, config, manifest
        Assert.Equal(1, report.SnapshotsRemoved);
        Assert.True(report.BlobBytesFreed > 0);
        Assert.Equal("orphan content".Length, report.SnapshotBytesFreed);
        Assert.True((await t.Store.VerifyAsync()).Ok);
    }

    [Fact]
    public async Task Gc_with_prune_cache_drops_cache_entries_that_are_not_a_prefix_of_a_tagged_image()
    {
        using var t = new TestStore();
        var baseState = await t.AddLayerAsync(TestStore.Empty, "a", "a");
        var full = await t.AddLayerAsync(baseState, "b", "b");
        await t.Store.Names.TagAsync("web", await t.Store.Content.WriteImageAsync(full));
        var stray = await t.AddLayerAsync(TestStore.Empty, "stray", "stray");
        string prefixKey = new('1', 64), strayKey = new('2', 64);
        await t.Store.StepCache.PutAsync(prefixKey, baseState);
        await t.Store.StepCache.PutAsync(strayKey, stray);

        var keep = await t.Store.CollectGarbageAsync(pruneCache: false);
        Assert.Equal(0, keep.StepEntriesRemoved);
        Assert.True(t.Store.Content.HasBlob(stray.Layers[0].Digest));

        var report = await t.Store.CollectGarbageAsync(pruneCache: true);
        Assert.Equal(1, report.StepEntriesRemoved);
        Assert.NotNull(t.Store.StepCache.TryGet(prefixKey));
        Assert.Null(t.Store.StepCache.TryGet(strayKey));
        Assert.False(t.Store.Content.HasBlob(stray.Layers[0].Digest));
        Assert.False(t.Store.Snapshots.HasSnapshot(stray.Config.RootFs.DiffIds[0]));
    }

    private static void AssertProblem(VerifyReport report, StoreProblemKind kind, Digest digest)
    {
        var p = Assert.Single(report.Problems, p => p.Kind == kind && p.Digest == digest);
        Assert.Contains("web", p.AffectedImages);
    }
}
