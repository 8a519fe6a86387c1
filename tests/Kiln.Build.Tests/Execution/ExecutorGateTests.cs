using Kiln.Build.Execution;
using Kiln.Build.Planning;
using Kiln.Build.Store;
using Kiln.Build.Tests.Testing.Vm;
using Kiln.Oci;

namespace Kiln.Build.Tests.Execution;

/// <summary>The executor and its gate: what the gate leaves running is awaited before a build returns.</summary>
public sealed class ExecutorGateTests : IDisposable
{
    private readonly ScratchDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>Passes every image at once and leaves <see cref="Idle"/> running.</summary>
    private sealed class LingeringGate : IImageGate
    {
        public TaskCompletionSource Idle { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Checked { get; private set; }

        public Task<GateResult> CheckAsync(ImagePlan image, Descriptor manifest, ImageState state, CancellationToken ct)
        {
            Checked++;
            return Task.FromResult(GateResult.Untested);
        }

        public Task WhenIdleAsync() => Idle.Task;
    }

    private (BuildPlan Plan, KilnStore Store) Setup()
    {
        var yaml = Path.Combine(_dir.Path, "kiln.yaml");
        File.WriteAllText(yaml, "images:\n  empty:\n    from: scratch\n    config: {cmd: [/bin/true]}\n");
        return (Builder.Plan(yaml, new BuildOptions()), KilnStore.Open(Path.Combine(_dir.Path, "store")));
    }

    /// <summary>Looks, while it checks an image, at where the image's last layer is and what the store holds of it.</summary>
    private sealed class PeekingGate(KilnStore store, Exception? fail = null) : IImageGate
    {
        public List<string> Seen { get; } = [];

        public Task<GateResult> CheckAsync(ImagePlan image, Descriptor manifest, ImageState state, CancellationToken ct)
        {
            if (state.Layers.Count > 0)
            {
                var diffId = state.Config.RootFs.DiffIds[^1];
                var top = LayerCommit.LowerDirs(store, state)[0];
                Seen.Add($"{image.Name}: reads {(top == store.Snapshots.SnapshotPath(diffId) ? "the snapshot" : "its prepared dir")}, "
                    + $"file {File.ReadAllText(Path.Combine(top, "app/version"))}, snapshot in place: {store.Snapshots.HasSnapshot(diffId)}, "
                    + $"image written: {store.Content.HasBlob(manifest.Digest)}");
            }
            return fail is null ? Task.FromResult(GateResult.Untested) : Task.FromException<GateResult>(fail);
        }
    }

    [Fact]
    public async Task The_tests_read_the_last_layer_where_it_was_made_and_it_is_moved_into_the_store_and_cached_once_they_end()
    {
        var context = Directory.CreateDirectory(Path.Combine(_dir.Path, "ctx")).FullName;
        File.WriteAllText(Path.Combine(context, "version"), "1");
        var yaml = Path.Combine(context, "kiln.yaml");
        File.WriteAllText(yaml, "images:\n  app:\n    from: scratch\n    steps:\n      - copy: version\n        to: /app/version\n");
        using var store = KilnStore.Open(Path.Combine(_dir.Path, "store"));
        var gate = new PeekingGate(store);
        var result = await new Executor(store, new BuildOptions(), null, gate).BuildAsync(Builder.Plan(yaml, new BuildOptions()));

        Assert.Equal(["app: reads its prepared dir, file 1, snapshot in place: False, image written: False"], gate.Seen);
        var state = await store.Content.ReadImageStateAsync(Assert.Single(result.Images).Manifest.Digest);
        var diffId = state.Config.RootFs.DiffIds[^1];
        Assert.True(store.Snapshots.HasSnapshot(diffId));
        Assert.Equal(store.Snapshots.SnapshotPath(diffId), LayerCommit.LowerDirs(store, state)[0]);
        Assert.Equal("1", File.ReadAllText(Path.Combine(store.Snapshots.SnapshotPath(diffId), "app/version")));
        Assert.Equal(result.Images[0].Manifest.Digest, store.Names.TryGetTag("app")?.Digest);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(store.Root, "kiln/tmp")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(store.Root, "kiln/scratch")));

        // The next build of the same definition finds every step in the cache.
        var again = await new Executor(store, new BuildOptions(), null, new PeekingGate(store)).BuildAsync(Builder.Plan(yaml, new BuildOptions()));
        Assert.All(again.Images[0].Steps, s => Assert.True(s.Cached, s.Description));

        // A gate that fails still lets the layer be kept: the build throws its error, and leaves nothing in kiln/tmp.
        File.WriteAllText(Path.Combine(context, "version"), "2");
        var failing = new PeekingGate(store, new IOException("the gate broke"));
        var e = await Assert.ThrowsAsync<IOException>(() => new Executor(store, new BuildOptions(), null, failing).BuildAsync(Builder.Plan(yaml, new BuildOptions())));
        Assert.Equal("the gate broke", e.Message);
        Assert.Equal(["app: reads its prepared dir, file 2, snapshot in place: False, image written: False"], failing.Seen);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(store.Root, "kiln/tmp")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(store.Root, "kiln/scratch")));
        Assert.Equal(2, Directory.EnumerateDirectories(store.Snapshots.SnapshotsDir).Count());
    }

    [Fact]
    public async Task A_build_returns_only_once_its_gate_is_idle_and_throws_what_the_gates_leftover_work_threw()
    {
        var (plan, store) = Setup();
        using (store)
        {
            var gate = new LingeringGate();
            var build = new Executor(store, new BuildOptions(), null, gate).BuildAsync(plan);
            await Task.Delay(200);
            Assert.Equal(1, gate.Checked);
            Assert.False(build.IsCompleted, "the build returned while its gate was still busy");
            gate.Idle.SetResult();
            var result = await build;
            Assert.Equal("empty", Assert.Single(result.Images).Name);

            var failing = new LingeringGate();
            failing.Idle.SetException(new IOException("could not remove a test instance"));
            var e = await Assert.ThrowsAsync<IOException>(() => new Executor(store, new BuildOptions(), null, failing).BuildAsync(plan));
            Assert.Equal("could not remove a test instance", e.Message);
        }
    }
}
