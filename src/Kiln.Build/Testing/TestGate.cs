using Kiln.Build.Definition;
using Kiln.Build.Execution;
using Kiln.Build.Planning;
using Kiln.Build.Store;
using Kiln.Build.Testing.Spec;
using Kiln.Build.Testing.Vm;
using Kiln.Oci;

namespace Kiln.Build.Testing;

/// <summary>The gate between building an image and naming it: runs the image's spec (cached by image digest,
/// spec digest and phase). Images without <c>test:</c> pass trivially.</summary>
public sealed class TestGate : IImageGate
{
    private readonly IReadOnlyDictionary<string, TestSpec> _specs;
    private readonly ImageTester _tester;

    public TestGate(KilnStore store, IReadOnlyDictionary<string, TestSpec> specs, TestOptions options, IProgress<BuildEvent>? progress = null)
    {
        _specs = specs;
        _tester = new ImageTester(store, options, progress);
        if (specs.Values.Any(s => s.Checks.Any(c => c is HttpCheck)))
        {
            _ = Task.Run(Boot.Instance.PrewarmHttpAsync);
        }
    }

    public Task<GateResult> CheckAsync(ImagePlan image, Descriptor manifest, ImageState state, CancellationToken ct) =>
        _specs.TryGetValue(image.Name, out var spec)
            ? _tester.TestAsync(image.Name, spec, image.Definition.Boot, manifest.Digest, state, ct)
            : Task.FromResult(GateResult.Untested);

    public Task WhenIdleAsync() => _tester.WhenIdleAsync();

    /// <summary>Makes, in the background, the threads that start the sandboxes of the image's checks (one for the bake
    /// commands, which run one after another, and one for the instance), and reads what their scratch space may hold.</summary>
    public void Prepare(ImagePlan image)
    {
        if (!_specs.TryGetValue(image.Name, out var spec))
        {
            return;
        }
        int commands = spec.In(TestPhase.Bake).Count(c => c is CommandCheck);
        int instances = spec.In(TestPhase.Boot).Any() ? 1 : 0;
        if (commands + instances > 0)
        {
            Sandbox.ChildProcess.Prestart(Math.Min(commands, 1) + instances);
            _ = Task.Run(ScratchSpace.Recent); // what their tmpfs may hold, read once for them all
        }
    }
}

/// <summary><c>kiln build</c> with its tests: load and validate the definition and every spec, plan, and only then
/// open the store and run the plan with the test gate.</summary>
public static class TestedBuilder
{
    /// <summary>A spec's digest, as the plan's keys take it (<see cref="BuildOptions.SpecIdentity"/>).</summary>
    public static string SpecDigest(Definition.TestSource test, Definition.BootMode boot) => TestSpecLoader.Load(test, boot).Digest.Value;

    /// <param name="wrap">Wraps the test gate (a later stage's, e.g. what records provenance once tests answered).</param>
    public static Task<BuildResult> BuildAsync(string definitionPath, string storeRoot, BuildOptions options,
        IProgress<BuildEvent>? progress = null, CancellationToken cancellationToken = default,
        Func<KilnFile, IReadOnlyDictionary<string, TestSpec>, KilnStore, IImageGate, IImageGate>? wrap = null) =>
        Builder.BuildAsync(definitionPath, storeRoot, options with { SpecIdentity = SpecDigest }, progress, cancellationToken, file =>
        {
            var specs = TestSpecLoader.LoadAll(file);
            return store =>
            {
                IImageGate gate = new TestGate(store, specs, new TestOptions { Epoch = options.Epoch, MemoryScratchSize = options.ScratchOnDisk ? null : options.MemoryScratchSize, RemoteCache = options.RemoteCache?.Invoke(file) }, progress);
                return wrap is null ? gate : wrap(file, specs, store, gate);
            };
        });
}

/// <summary><c>kiln test IMAGE</c>: the spec from the definition, the image from the store (by name), run again.</summary>
public static class StoredImageTests
{
    /// <param name="record">Called once the results are stored, under the same store lock (a later stage's, e.g. what
    /// refreshes the image's test-results referrer as a build does).</param>
    public static async Task<GateResult> RunAsync(string definitionPath, string storeRoot, string image, TestOptions options,
        IProgress<BuildEvent>? progress = null, CancellationToken cancellationToken = default, TestedImageRecorder? record = null)
    {
        var (definition, spec) = LoadSpec(definitionPath, image);
        if (!Environment.IsPrivilegedProcess)
        {
            throw new Sandbox.SandboxException("kiln test mounts overlayfs and creates namespaces: run it as root");
        }
        using var store = KilnStore.Open(storeRoot);
        using var storeLock = store.AcquireLock(exclusive: false, cancellationToken);
        var manifest = store.Names.TryGetTag(image) ?? throw new ArgumentException($"the store has no image named '{image}' (build it first)");
        var state = await store.Content.ReadImageStateAsync(manifest.Digest, cancellationToken).ConfigureAwait(false);
        var tester = new ImageTester(store, options, progress);
        GateResult result;
        try
        {
            result = await tester.TestAsync(image, spec, definition.Boot, manifest.Digest, state, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await tester.WhenIdleAsync().ConfigureAwait(false);
        }
        if (record is not null && result.Phases.Count > 0)
        {
            await record(store, image, manifest, spec.Digest, result, cancellationToken).ConfigureAwait(false);
        }
        return result;
    }

    /// <summary><c>kiln test IMAGE --phase vm</c>: the image (by name) is exported as a raw disk into a store temp dir by
    /// <paramref name="exportRawDisk"/> (the caller's disk exporter: Testing stands left of Exporters and may not use
    /// them), booted under qemu with the spec's command, service, port and http checks (<see cref="ImageTester.TestVmAsync"/>),
    /// and the disk is deleted afterwards. A shared store lock is held throughout, so the exporter may take one too.</summary>
    public static async Task<GateResult> RunVmAsync(string definitionPath, string storeRoot, string image, VmOptions vm,
        RawDiskExport exportRawDisk, IProgress<BuildEvent>? progress = null, CancellationToken cancellationToken = default, TestedImageRecorder? record = null)
    {
        ArgumentNullException.ThrowIfNull(exportRawDisk);
        var (_, spec) = LoadSpec(definitionPath, image);
        using var store = KilnStore.Open(storeRoot);
        using var storeLock = store.AcquireLock(exclusive: false, cancellationToken);
        var manifest = store.Names.TryGetTag(image) ?? throw new ArgumentException($"the store has no image named '{image}' (build it first)");
        var tester = new ImageTester(store, new TestOptions { UseCache = false, Phase = TestPhase.Vm }, progress);
        if (!spec.Checks.Any(VmPhase.Supports))
        {
            return GateResult.Untested;
        }
        var work = store.CreateTempDir("vm");
        try
        {
            var disk = Path.Combine(work, image + ".raw");
            await exportRawDisk(store, image, manifest, disk, cancellationToken).ConfigureAwait(false);
            var result = await tester.TestVmAsync(image, spec, disk, vm, cancellationToken).ConfigureAwait(false);
            // Kept as the record of what passed (kiln promote reads it), though never reused as a cached result.
            foreach (var report in result.Phases.Where(p => p.SkippedBecause is null))
            {
                await new TestResultStore(store).WriteAsync(ImageTester.CacheKey(manifest.Digest, spec.Digest, TestPhase.Vm),
                    TestResultJson.Write(report, manifest.Digest, spec.Digest), cancellationToken).ConfigureAwait(false);
            }
            if (record is not null && result.Phases.Count > 0)
            {
                await record(store, image, manifest, spec.Digest, result, cancellationToken).ConfigureAwait(false);
            }
            return result;
        }
        finally
        {
            store.DeleteTempDir(work);
        }
    }

    private static (Definition.ImageDefinition Definition, TestSpec Spec) LoadSpec(string definitionPath, string image)
    {
        var file = Definition.DefinitionLoader.Load(definitionPath);
        var definition = file.Images.FirstOrDefault(i => i.Name == image)
            ?? throw new ArgumentException($"{file.Path} defines no image named '{image}'");
        if (definition.Test is null)
        {
            throw new ArgumentException($"image '{image}' has no `test:` in {file.Path}");
        }
        return (definition, TestSpecLoader.Load(definition.Test, definition.Boot));
    }
}

/// <summary>Writes the stored image <paramref name="image"/> (<paramref name="manifest"/>) as a raw disk at
/// <paramref name="outputPath"/>, e.g. with Exporters.Disk.DiskExporter and ExportFormat.Raw.</summary>
public delegate Task RawDiskExport(KilnStore store, string image, Descriptor manifest, string outputPath, CancellationToken cancellationToken);

/// <summary>What a later stage does with the results of <c>kiln test IMAGE</c> once they are stored: the image
/// <paramref name="image"/> (<paramref name="manifest"/>) tested against the spec <paramref name="spec"/>.</summary>
public delegate Task TestedImageRecorder(KilnStore store, string image, Descriptor manifest, Digest spec, GateResult result, CancellationToken cancellationToken);
