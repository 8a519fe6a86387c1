using System.Text.Json;
using Kiln.Build.Store;
using Kiln.Build.Store.Content;
using Kiln.Oci;

namespace Kiln.Build.Tests.Store;

public sealed class KilnStoreImageTests
{
    [Fact]
    public async Task An_image_written_and_tagged_is_read_back_with_its_config()
    {
        using var t = new TestStore();
        var state = await t.AddLayerAsync(TestStore.Empty, "hello.txt", "hello");
        var desc = await t.Store.Content.WriteImageAsync(state);
        Assert.Equal(MediaTypes.ImageManifest, desc.MediaType);
        var (manifest, config) = await t.Store.Content.ReadImageAsync(desc.Digest);
        Assert.Equal(state.Layers, manifest.Layers);
        Assert.Equal(state.Config.RootFs.DiffIds, config.RootFs.DiffIds);
        Assert.Equal(desc, await t.Store.Content.WriteImageAsync(state)); // deterministic
    }

    [Fact]
    public async Task An_images_manifest_is_described_before_it_is_written_as_the_write_then_returns_it()
    {
        using var t = new TestStore();
        var state = await t.AddLayerAsync(TestStore.Empty, "hello.txt", "hello");
        var described = ContentStore.DescribeImage(state);
        Assert.False(t.Store.Content.HasBlob(described.Digest));
        Assert.Equal(described, await t.Store.Content.WriteImageAsync(state));
        Assert.True(t.Store.Content.HasBlob(described.Digest));
        Assert.Equal(described.Size, new FileInfo(t.Store.Content.BlobPath(described.Digest)).Length);
    }

    [Fact]
    public async Task Writing_an_image_whose_diff_ids_do_not_match_its_layers_is_refused()
    {
        using var t = new TestStore();
        var state = await t.AddLayerAsync(TestStore.Empty, "a", "a");
        var bad = state with { Config = state.Config with { RootFs = new RootFs() } };
        await Assert.ThrowsAsync<StoreException>(() => t.Store.Content.WriteImageAsync(bad));
    }

    [Fact]
    public async Task Tags_are_added_replaced_listed_and_removed_and_index_json_stays_valid_and_sorted()
    {
        using var t = new TestStore();
        var s1 = await t.AddLayerAsync(TestStore.Empty, "a", "a");
        var s2 = await t.AddLayerAsync(s1, "b", "b");
        var m1 = await t.Store.Content.WriteImageAsync(s1);
        var m2 = await t.Store.Content.WriteImageAsync(s2);

        await t.Store.Names.TagAsync("web", m1);
        await t.Store.Names.TagAsync("base", m1);
        await t.Store.Names.TagAsync("zeta:1.0", m2);
        await t.Store.Names.TagAsync("web", m2);

        Assert.Equal(["base", "web", "zeta:1.0"], t.Store.Names.ListTags().Select(x => x.Name));
        Assert.Equal(m2.Digest, t.Store.Names.TryGetTag("web")!.Digest);
        Assert.Null(t.Store.Names.TryGetTag("nope"));
        AssertIndexSortedByName(t.Root, ["base", "web", "zeta:1.0"]);

        Assert.True(await t.Store.Names.UntagAsync("web"));
        Assert.False(await t.Store.Names.UntagAsync("web"));
        Assert.Equal(["base", "zeta:1.0"], t.Store.Names.ListTags().Select(x => x.Name));
        AssertIndexSortedByName(t.Root, ["base", "zeta:1.0"]);
    }

    [Theory]
    [InlineData("")]
    [InlineData("-leading-dash")]
    [InlineData("has space")]
    [InlineData("semi;colon")]
    [InlineData("new\nline")]
    public async Task Invalid_image_names_are_refused(string name)
    {
        using var t = new TestStore();
        var d = await t.Store.Content.WriteBlobAsync("{}"u8.ToArray(), MediaTypes.ImageManifest);
        await Assert.ThrowsAsync<StoreException>(() => t.Store.Names.TagAsync(name, d));
    }

    [Fact]
    public async Task Tagging_a_manifest_that_is_not_in_the_store_is_refused()
    {
        using var t = new TestStore();
        var d = new Descriptor { MediaType = MediaTypes.ImageManifest, Digest = Digest.Compute("x"u8), Size = 1 };
        await Assert.ThrowsAsync<StoreException>(() => t.Store.Names.TagAsync("web", d));
    }

    [Fact]
    public async Task Skopeo_and_umoci_read_a_tagged_image_from_the_store()
    {
        using var t = new TestStore();
        var state = await t.AddLayerAsync(TestStore.Empty, "hello.txt", "hello from kiln\n");
        var desc = await t.Store.Content.WriteImageAsync(state);
        await t.Store.Names.TagAsync("tiny", desc);

        var (rc, output) = TestStore.Run("/usr/bin/skopeo", "inspect", $"oci:{t.Root}:tiny");
        Assert.True(rc == 0, output);
        using var doc = JsonDocument.Parse(output);
        Assert.Equal(desc.Digest.Value, doc.RootElement.GetProperty("Digest").GetString());
        Assert.Equal(1, doc.RootElement.GetProperty("Layers").GetArrayLength());

        var (rc2, output2) = TestStore.Run("umoci", "ls", "--layout", t.Root);
        Assert.True(rc2 == 0, output2);
        Assert.Contains("tiny", output2);
    }

    [Fact]
    public async Task Committing_a_snapshot_that_exists_deletes_the_prepared_dir()
    {
        using var t = new TestStore();
        var state = await t.AddLayerAsync(TestStore.Empty, "a", "a");
        var diffId = state.Config.RootFs.DiffIds[0];
        Assert.True(t.Store.Snapshots.HasSnapshot(diffId));
        var again = t.Store.CreateTempDir("snapshot");
        File.WriteAllText(Path.Combine(again, "a"), "a");
        t.Store.Snapshots.CommitSnapshot(again, diffId);
        Assert.False(Directory.Exists(again));
        Assert.True(File.Exists(Path.Combine(t.Store.Snapshots.SnapshotPath(diffId), "a")));
        Assert.False(t.Store.Snapshots.HasSnapshot(Digest.Compute("never"u8)));
    }

    private static void AssertIndexSortedByName(string root, string[] expected)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(root, "index.json")));
        var names = doc.RootElement.GetProperty("manifests").EnumerateArray()
            .Select(m => m.GetProperty("annotations").GetProperty(Annotations.RefName).GetString())
            .ToArray();
        Assert.Equal(expected, names);
    }
}
