using Kiln.Build.Layers;
using Kiln.Build.Sandbox;
using Kiln.Build.Store;

namespace Kiln.Build.Local;

/// <summary>The tree a shell opens on: layers (topmost first) and the environment, working directory and user it
/// runs with.</summary>
public sealed record ShellTree
{
    public required IReadOnlyList<string> LowerDirsTopFirst { get; init; }
    public IReadOnlyList<KeyValuePair<string, string>> Environment { get; init; } = [];
    public string WorkingDirectory { get; init; } = "/";

    /// <summary>USER[:GROUP] as the image names it, or null for root.</summary>
    public string? User { get; init; }

    /// <summary>The host's network (and a copy of its resolv.conf); false: a namespace with loopback only.</summary>
    public bool HostNetwork { get; init; }

    public IReadOnlyList<BindMount> Binds { get; init; } = [];
}

/// <summary>An interactive shell on kiln's terminal, in a sandbox whose root is a throwaway overlay on a tree: what the
/// shell changes goes to an upper dir that is deleted when it exits, so it never reaches a layer or the step cache.</summary>
public static class InteractiveShell
{
    /// <summary><c>kiln shell</c>: a shell as root in the image the store names <paramref name="image"/>, with the
    /// image's environment (and <paramref name="terminal"/>: TERM and the like) and working directory.</summary>
    public static async Task<int> RunImageAsync(string storeRoot, string image, bool hostNetwork,
        IReadOnlyList<KeyValuePair<string, string>> terminal, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(terminal);
        RequireRoot();
        using var store = KilnStore.Open(storeRoot);
        using var storeLock = store.AcquireLock(exclusive: false, ct);
        var manifest = store.Names.TryGetTag(image) ?? throw LocalException.BadInput($"the store has no image named '{image}' (build it first)");
        var state = await store.Content.ReadImageStateAsync(manifest.Digest, ct).ConfigureAwait(false);
        // Layers of a pulled image, or of one built from remote cache hits, are extracted on first use.
        await store.Snapshots.EnsureAsync(state, ct: ct).ConfigureAwait(false);
        var config = state.Config.Config;
        return await RunAsync(store, new ShellTree
        {
            LowerDirsTopFirst = Execution.LayerCommit.LowerDirs(store, state),
            Environment = Execution.ConfigMerge.ImageEnvironment(config, [], terminal),
            WorkingDirectory = config.WorkingDir is { Length: > 0 } wd ? wd : "/",
            HostNetwork = hostNetwork,
        }, ct).ConfigureAwait(false);
    }

    /// <summary><c>kiln build --debug</c>: a shell in a failed step's tree as the step left it (its files over the
    /// image's layers, read-only beneath the shell's own throwaway layer), with the step's environment, working
    /// directory, user, network and cache binds (read-only); no secret is mounted.</summary>
    public static async Task<int> RunOnFailedStepAsync(string storeRoot, Execution.FailedStep step,
        IReadOnlyList<KeyValuePair<string, string>> terminal, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(step);
        ArgumentNullException.ThrowIfNull(terminal);
        using var store = KilnStore.Open(storeRoot);
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (k, v) in step.Environment.Concat(terminal))
        {
            environment[k] = v;
        }
        return await RunAsync(store, new ShellTree
        {
            // The step's upper dir (its whiteouts and opaque dirs are read as such) over the layers it ran on.
            LowerDirsTopFirst = [step.UpperDir, .. step.LowerDirsTopFirst],
            Environment = [.. environment.OrderBy(e => e.Key, StringComparer.Ordinal)],
            WorkingDirectory = step.WorkingDirectory,
            User = step.User,
            HostNetwork = step.HostNetwork,
            Binds = step.Binds,
        }, ct).ConfigureAwait(false);
    }

    private static void RequireRoot()
    {
        if (!Environment.IsPrivilegedProcess)
        {
            throw new SandboxException("kiln shell mounts overlayfs and creates namespaces: run it as root");
        }
    }

    /// <summary>Runs bash when the tree has <c>/bin/bash</c>, else <c>/bin/sh</c>, and returns its exit status.</summary>
    public static async Task<int> RunAsync(KilnStore store, ShellTree tree, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(tree);
        var shell = Has(tree.LowerDirsTopFirst, "/bin/bash") ? "/bin/bash"
            : Has(tree.LowerDirsTopFirst, "/bin/sh") ? "/bin/sh"
            : throw SandboxException.SetupFailed("the image has neither /bin/bash nor /bin/sh to open a shell with");
        // On disk, not a tmpfs: a shell may stay open for long and write much.
        var scratch = store.CreateTempDir("shell");
        try
        {
            var spec = new SandboxSpec
            {
                LowerDirsTopFirst = tree.LowerDirsTopFirst,
                UpperDir = Path.Combine(scratch, "upper"),
                ScratchDir = Path.Combine(scratch, "sandbox"),
                Command = [shell, "-i"],
                Environment = tree.Environment,
                WorkingDirectory = tree.WorkingDirectory,
                User = tree.User,
                HostNetwork = tree.HostNetwork,
                ResolvConf = tree.HostNetwork,
                PolicyRcD = false,
                Binds = tree.Binds,
                Hostname = "kiln-shell",
                // The shell is not PID 1, which ignores every signal it has no handler for: Ctrl-C reaches what it runs.
                CommandAsChild = true,
                Terminal = true,
            };
            return await Sandbox.Sandbox.RunAsync(spec, null, ct).ConfigureAwait(false);
        }
        finally
        {
            store.DeleteTempDir(scratch);
        }
    }

    private static bool Has(IReadOnlyList<string> layers, string path)
    {
        try
        {
            return SafePath.Lookup(layers, SafePath.Resolve(layers, path)) is not null;
        }
        catch (LayerException)
        {
            return false;
        }
    }
}
