using Kiln.Build.Store;
using Kiln.Oci;

namespace Kiln.Build.Tests.Store;

public sealed class KilnStoreCacheTests
{
    private const string Key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    [Fact]
    public async Task A_cached_step_is_returned_as_put()
    {
        using var t = new TestStore();
        var state = await t.AddLayerAsync(TestStore.Empty, "a", "a");
        Assert.Null(t.Store.StepCache.TryGet(Key));
        await t.Store.StepCache.PutAsync(Key, state);
        var got = t.Store.StepCache.TryGet(Key);
        Assert.NotNull(got);
        Assert.Equal(state.Layers, got.Layers);
        Assert.Equal(state.Config.RootFs.DiffIds, got.Config.RootFs.DiffIds);
        Assert.Equal(OciJson.Serialize(state.Config), OciJson.Serialize(got.Config));
    }

    [Fact]
    public async Task A_cached_step_whose_layer_blob_is_gone_is_a_miss()
    {
        using var t = new TestStore();
        var state = await t.AddLayerAsync(TestStore.Empty, "a", "a");
        await t.Store.StepCache.PutAsync(Key, state);
        File.Delete(t.Store.Content.BlobPath(state.Layers[0].Digest));
        Assert.Null(t.Store.StepCache.TryGet(Key));
    }

    [Fact]
    public async Task A_cached_step_whose_snapshot_is_gone_is_a_miss()
    {
        using var t = new TestStore();
        var state = await t.AddLayerAsync(TestStore.Empty, "a", "a");
        await t.Store.StepCache.PutAsync(Key, state);
        Directory.Delete(t.Store.Snapshots.SnapshotPath(state.Config.RootFs.DiffIds[0]), recursive: true);
        Assert.Null(t.Store.StepCache.TryGet(Key));
    }

    [Fact]
    public async Task A_step_put_to_be_unpacked_on_use_counts_without_its_snapshot_while_its_blob_is_there()
    {
        using var t = new TestStore();
        var state = await t.AddLayerAsync(TestStore.Empty, "a", "a");
        await t.Store.StepCache.PutAsync(Key, state, unpackedOnUse: true);
        Directory.Delete(t.Store.Snapshots.SnapshotPath(state.Config.RootFs.DiffIds[0]), recursive: true);
        Assert.NotNull(t.Store.StepCache.TryGet(Key));
        Assert.Equal(0, (await t.Store.RepairAsync()).StepEntriesRemoved);
        Assert.NotNull(t.Store.StepCache.TryGet(Key));
        File.Delete(t.Store.Content.BlobPath(state.Layers[0].Digest));
        Assert.Null(t.Store.StepCache.TryGet(Key));
    }

    [Fact]
    public async Task An_unreadable_cache_entry_is_a_miss()
    {
        using var t = new TestStore();
        await t.Store.StepCache.PutAsync(Key, TestStore.Empty);
        Assert.NotNull(t.Store.StepCache.TryGet(Key));
        File.WriteAllText(Path.Combine(t.Root, "kiln", "steps", Key + ".json"), "{\"schemaVersion\":1,\"state\":nu");
        Assert.Null(t.Store.StepCache.TryGet(Key));
    }

    [Theory]
    [InlineData("")]
    [InlineData("../../../etc/passwd")]
    [InlineData("0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef")]
    [InlineData("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde")]
    [InlineData("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0")]
    [InlineData("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab")]
    [InlineData("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde/")]
    public async Task Malformed_cache_keys_are_refused(string key)
    {
        using var t = new TestStore();
        Assert.Throws<StoreException>(() => t.Store.StepCache.TryGet(key));
        await Assert.ThrowsAsync<StoreException>(() => t.Store.StepCache.PutAsync(key, TestStore.Empty));
    }
}
