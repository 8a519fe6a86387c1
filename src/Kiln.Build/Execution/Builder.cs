using Kiln.Build.Definition;
using Kiln.Build.Planning;
using Kiln.Build.Store;

namespace Kiln.Build.Execution;

/// <summary>The whole of <c>kiln build</c>: load and validate the definition, plan, and only then open the
/// store and run the plan — so a bad definition leaves the store untouched.</summary>
public static class Builder
{
    public static BuildPlan Plan(string definitionPath, BuildOptions options) =>
        Plan(DefinitionLoader.Load(definitionPath), options, null, new RegistryBases(null, options)).Plan;

    /// <param name="storeRoot">When given, context files are hashed through the store's <see cref="ContextHashCache"/>
    /// (read here; the caller saves it once the store is open).</param>
    private static (BuildPlan Plan, ContextHashCache? Hashes) Plan(KilnFile file, BuildOptions options, string? storeRoot, RegistryBases registryBases)
    {
        var hashes = storeRoot is null ? null : ContextHashCache.Load(storeRoot, file.ContextDir);
        var plan = Planner.Plan(file, options.Targets, new PlanOptions
        {
            BootstrapIdentity = source => Bootstrapper.Identity(source, options.HostAptDir),
            ImportIdentity = source => OciImport.Identity(source, options.Platform),
            ArchiveIdentity = source => OciImport.Identity(source, options.Platform),
            RegistryIdentity = registryBases.Identity,
            Hasher = hashes ?? (IContextHasher)new Sha256ContextHasher(),
            SpecIdentity = options.SpecIdentity,
        });
        return (plan, hashes);
    }

    /// <param name="gate">Given the definition, returns how to make the gate that decides whether each image gets its
    /// name (null: every image does). It runs on another core while the build is planned, and before the store is
    /// opened, so it may still refuse bad input; a problem in the plan is reported first.</param>
    public static async Task<BuildResult> BuildAsync(string definitionPath, string storeRoot, BuildOptions options,
        IProgress<BuildEvent>? progress = null, CancellationToken cancellationToken = default,
        Func<KilnFile, Func<KilnStore, IImageGate>>? gate = null)
    {
        // The one-time work of the first cache lookup, image write and pack, on another core while this one plans.
        _ = Task.Run(() =>
        {
            KilnStore.Prewarm();
            Layers.LayerPacker.Prewarm(options.Compression);
        }, CancellationToken.None);
        BuildPlan plan;
        ContextHashCache? hashes;
        Func<KilnStore, IImageGate>? makeGate;
        var registryBases = new RegistryBases(storeRoot, options);
        using (new PhaseClock(progress, "", null).Measure("plan"))
        {
            var file = DefinitionLoader.Load(definitionPath);
            var gateReady = gate is null ? null : Task.Run(() => gate(file), CancellationToken.None);
            try
            {
                (plan, hashes) = Plan(file, options, storeRoot, registryBases);
            }
            catch
            {
                if (gateReady is not null)
                {
                    await gateReady.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default).ConfigureAwait(false);
                }
                throw;
            }
            makeGate = gateReady is null ? null : await gateReady.ConfigureAwait(false);
        }
        if (!Environment.IsPrivilegedProcess)
        {
            throw new Sandbox.SandboxException("kiln build mounts overlayfs and creates namespaces: run it as root");
        }
        var store = KilnStore.Open(storeRoot);
        hashes?.Save();
        return await new Executor(store, options, progress, makeGate?.Invoke(store), registryBases).BuildAsync(plan, cancellationToken).ConfigureAwait(false);
    }
}
