using Kiln.Build.Execution;
using Kiln.Build.Planning;
using Kiln.Build.Store;
using Kiln.Build.Testing.Spec;
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
    }

    public Task<GateResult> CheckAsync(ImagePlan image, Descriptor manifest, ImageState state, CancellationToken ct) =>
        _specs.TryGetValue(image.Name, out var spec)
            ? _tester.TestAsync(image.Name, spec, image.Definition.Boot, manifest.Digest, state, ct)
            : Task.FromResult(GateResult.Untested);
}

/// <summary><c>kiln build</c> with its tests: load and validate the definition and every spec, plan, and only then
/// open the store and run the plan with the test gate.</summary>
public static class TestedBuilder
{
    public static Task<BuildResult> BuildAsync(string definitionPath, string storeRoot, BuildOptions options,
        IProgress<BuildEvent>? progress = null, CancellationToken cancellationToken = default) =>
        Builder.BuildAsync(definitionPath, storeRoot, options, progress, cancellationToken, plan =>
        {
            var specs = TestSpecLoader.LoadAll(plan.File);
            return store => new TestGate(store, specs, new TestOptions { Epoch = options.Epoch }, progress);
        });
}

/// <summary><c>kiln test IMAGE</c>: the spec from the definition, the image from the store (by name), run again.</summary>
public static class StoredImageTests
{
    public static async Task<GateResult> RunAsync(string definitionPath, string storeRoot, string image, TestOptions options,
        IProgress<BuildEvent>? progress = null, CancellationToken cancellationToken = default)
    {
        var file = Definition.DefinitionLoader.Load(definitionPath);
        var definition = file.Images.FirstOrDefault(i => i.Name == image)
            ?? throw new ArgumentException($"{file.Path} defines no image named '{image}'");
        if (definition.Test is null)
        {
            throw new ArgumentException($"image '{image}' has no `test:` in {file.Path}");
        }
        var spec = TestSpecLoader.Load(definition.Test, definition.Boot);
        if (!Environment.IsPrivilegedProcess)
        {
            throw new Sandbox.SandboxException("kiln test mounts overlayfs and creates namespaces: run it as root");
        }
        using var store = KilnStore.Open(storeRoot);
        using var storeLock = store.AcquireLock(exclusive: false, cancellationToken);
        var manifest = store.TryGetTag(image) ?? throw new ArgumentException($"the store has no image named '{image}' (build it first)");
        var state = await store.ReadImageStateAsync(manifest.Digest, cancellationToken).ConfigureAwait(false);
        return await new ImageTester(store, options, progress)
            .TestAsync(image, spec, definition.Boot, manifest.Digest, state, cancellationToken).ConfigureAwait(false);
    }
}
