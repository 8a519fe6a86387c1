using Kiln.Build.Definition;
using Kiln.Build.Planning;
using Kiln.Build.Store;

namespace Kiln.Build.Execution;

/// <summary>The whole of <c>kiln build</c>: load and validate the definition, plan, and only then open the
/// store and run the plan — so a bad definition leaves the store untouched.</summary>
public static class Builder
{
    public static BuildPlan Plan(string definitionPath, BuildOptions options)
    {
        var file = DefinitionLoader.Load(definitionPath);
        return Planner.Plan(file, options.Targets, new PlanOptions
        {
            BootstrapIdentity = source => Bootstrapper.Identity(source, options.HostAptDir),
            ImportIdentity = OciImport.Identity,
        });
    }

    public static async Task<BuildResult> BuildAsync(string definitionPath, string storeRoot, BuildOptions options,
        IProgress<BuildEvent>? progress = null, CancellationToken cancellationToken = default)
    {
        BuildPlan plan;
        using (new PhaseClock(progress, "", null).Measure("plan"))
        {
            plan = Plan(definitionPath, options);
        }
        if (!Environment.IsPrivilegedProcess)
        {
            throw new Sandbox.SandboxException("kiln build mounts overlayfs and creates namespaces: run it as root");
        }
        var store = KilnStore.Open(storeRoot);
        return await new Executor(store, options, progress).BuildAsync(plan, cancellationToken).ConfigureAwait(false);
    }
}
