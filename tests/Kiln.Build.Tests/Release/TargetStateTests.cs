using Kiln.Build.Release;
using Kiln.Build.Tests.Store;

namespace Kiln.Build.Tests.Release;

public sealed class TargetStateTests
{
    [Fact]
    public async Task Gc_keeps_the_images_a_target_serves_and_may_roll_back_to_after_their_name_moved_until_it_stops()
    {
        using var t = new TestStore();
        async Task<(Kiln.Oci.Descriptor Manifest, Kiln.Build.Store.ImageState State)> Image(string content)
        {
            var state = await t.AddLayerAsync(TestStore.Empty, "version", content);
            var manifest = await t.Store.Content.WriteImageAsync(state);
            await t.Store.Names.TagAsync("web", manifest); // each build moves the name on
            return (manifest, state);
        }
        var v1 = await Image("v1");
        var v2 = await Image("v2");
        var v3 = await Image("v3");
        var v4 = await Image("v4");
        var folder = new TargetFolder(t.Store, "web-staging");
        // v2 served, v1 its rollback, v3 being brought up when kiln was killed; v4 carries the name.
        await folder.WriteAsync(new TargetState
        {
            Target = "web-staging",
            Image = "web",
            Serving = v2.Manifest.Digest.Value,
            Previous = v1.Manifest.Digest.Value,
            Pending = v3.Manifest.Digest.Value,
            PendingServers = [new ServerRecord { Id = "s3", Digest = v3.Manifest.Digest.Value }],
        });

        await t.Store.CollectGarbageAsync(pruneCache: true);

        foreach (var (manifest, state) in new[] { v1, v2, v3, v4 })
        {
            Assert.True(t.Store.Content.HasBlob(manifest.Digest));
            Assert.True(t.Store.Content.HasBlob(state.Layers[0].Digest));
            Assert.True(t.Store.Snapshots.HasSnapshot(state.Config.RootFs.DiffIds[0]));
        }
        Assert.True((await t.Store.VerifyAsync()).Ok);

        // The release moved on to v4: v1 is no one's any more and goes; v2 is kept for a rollback.
        await folder.WriteAsync(folder.Read()! with
        {
            Serving = v4.Manifest.Digest.Value,
            Previous = v2.Manifest.Digest.Value,
            Pending = null,
            PendingServers = [],
        });
        await t.Store.CollectGarbageAsync();
        Assert.False(t.Store.Content.HasBlob(v1.Manifest.Digest));
        Assert.False(t.Store.Snapshots.HasSnapshot(v1.State.Config.RootFs.DiffIds[0]));
        Assert.False(t.Store.Content.HasBlob(v3.Manifest.Digest));
        Assert.True(t.Store.Content.HasBlob(v2.Manifest.Digest));
        Assert.True(t.Store.Snapshots.HasSnapshot(v2.State.Config.RootFs.DiffIds[0]));

        // Stopped: nothing of the target keeps an image.
        await folder.DeleteAsync();
        await t.Store.CollectGarbageAsync();
        Assert.False(t.Store.Content.HasBlob(v2.Manifest.Digest));
        Assert.True(t.Store.Content.HasBlob(v4.Manifest.Digest)); // tagged
        Assert.Empty(t.Store.Roots.All());
    }
}
