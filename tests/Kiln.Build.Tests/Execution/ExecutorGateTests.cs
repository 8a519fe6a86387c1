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
