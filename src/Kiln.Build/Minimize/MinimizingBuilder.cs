using Kiln.Build.Definition;
using Kiln.Build.Execution;
using Kiln.Build.Planning;
using Kiln.Build.Store;
using Kiln.Build.Testing;
using Kiln.Build.Testing.Spec;
using Kiln.Oci;

namespace Kiln.Build.Minimize;

/// <summary>The test gate, and the minimizer of the images with <c>minimize:</c>: <c>kiln build</c>'s gate.</summary>
public sealed class MinimizingGate : IImageGate, IImageMinimizer
{
    private readonly TestGate _tests;
    private readonly Minimizer _minimizer;

    public MinimizingGate(KilnStore store, IReadOnlyDictionary<string, TestSpec> specs, TestOptions options, BuildOptions buildOptions,
        IProgress<BuildEvent>? progress = null)
    {
        _tests = new TestGate(store, specs, options, progress);
        _minimizer = new Minimizer(store, specs, options, buildOptions, progress);
    }

    public Task<GateResult> CheckAsync(ImagePlan image, Descriptor manifest, ImageState state, CancellationToken ct) =>
        _tests.CheckAsync(image, manifest, state, ct);

    public void Prepare(ImagePlan image) => _tests.Prepare(image);

    public Task WhenIdleAsync() => _tests.WhenIdleAsync();

    public IImageMinimizer Minimizer => this;

    async Task<MinimizeOutcome> IImageMinimizer.MinimizeAsync(ImagePlan image, Descriptor manifest, ImageState full, CancellationToken ct)
    {
        var made = await _minimizer.MinimizeAsync(image, manifest, full, ct).ConfigureAwait(false);
        var r = made.Report;
        return new MinimizeOutcome(made.State, r)
        {
            Cached = made.Cached,
            BytesBefore = r.BytesBefore,
            BytesAfter = r.BytesAfter,
            FilesBefore = r.FilesBefore,
            FilesAfter = r.FilesAfter,
        };
    }

    Task IImageMinimizer.RetestedAsync(MinimizeOutcome outcome, GateResult retest, CancellationToken ct) =>
        _minimizer.RecordRetestAsync((MinimizeReport)outcome.Record, retest, ct);
}

/// <summary><c>kiln build</c> with its tests and minimization (see <see cref="TestedBuilder"/>).</summary>
public static class MinimizingBuilder
{
    /// <param name="wrap">Wraps the gate (a later stage's, e.g. what records provenance once tests answered); the
    /// wrapper must pass <see cref="IImageGate.Minimizer"/> on.</param>
    public static Task<BuildResult> BuildAsync(string definitionPath, string storeRoot, BuildOptions options,
        IProgress<BuildEvent>? progress = null, CancellationToken cancellationToken = default,
        Func<KilnFile, IReadOnlyDictionary<string, TestSpec>, KilnStore, IImageGate, IImageGate>? wrap = null) =>
        Builder.BuildAsync(definitionPath, storeRoot, options with { SpecIdentity = TestedBuilder.SpecDigest }, progress, cancellationToken, file =>
        {
            var specs = TestSpecLoader.LoadAll(file);
            return store =>
            {
                IImageGate gate = new MinimizingGate(store, specs, new TestOptions
                {
                    Epoch = options.Epoch,
                    MemoryScratchSize = options.ScratchOnDisk ? null : options.MemoryScratchSize,
                    RemoteCache = options.RemoteCache?.Invoke(file),
                }, options, progress);
                return wrap is null ? gate : wrap(file, specs, store, gate);
            };
        });
}
