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
