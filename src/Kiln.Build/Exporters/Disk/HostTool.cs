using Kiln.Build.Sandbox;

namespace Kiln.Build.Exporters.Disk;

/// <summary>Runs the host tools a disk is made with (sfdisk, mkfs, syslinux, mtools, debugfs, qemu-img) with a clean
/// environment; a failure names the tool, what it was doing and its last output lines, and says which package
/// provides the tool.</summary>
internal static class HostTool
{
    /// <summary>Exit status and the tool's stdout and stderr lines, interleaved as they came.</summary>
    public sealed record Result(int ExitCode, string Output);

    /// <summary>Runs the tool (with a clean environment, dying with us) and returns its exit code and output, whatever
    /// the exit code. Cancelling kills it.</summary>
    public static async Task<Result> RunAsync(string file, IEnumerable<string> args, IReadOnlyDictionary<string, string>? env, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        try
        {
            var (code, output) = await HostCommand.RunAsync(HostCommand.StartInfo(file, args, null, env ?? new Dictionary<string, string>()), ct)
                .ConfigureAwait(false);
            return new Result(code, output);
        }
        catch (SandboxException e)
        {
            throw ExportException.Failed($"cannot run {file}: {e.Message}{Hint(file)}", e);
        }
    }

    /// <summary>Runs the tool and throws <see cref="ExportException"/> naming <paramref name="doing"/> unless it exits 0.</summary>
    public static async Task<Result> CheckAsync(string doing, string file, IEnumerable<string> args, CancellationToken ct,
        IReadOnlyDictionary<string, string>? env = null)
    {
        var r = await RunAsync(file, args, env, ct).ConfigureAwait(false);
        if (r.ExitCode != 0)
        {
            throw ExportException.Failed($"{doing}: {file} exited with status {r.ExitCode}{Hint(file)}\n{Tail(r.Output)}");
        }
        return r;
    }

    /// <summary>Runs a shell script in a private mount namespace, so every mount it makes dies with it; the
    /// namespace's processes die with us (pdeathsig) and when cancelled.</summary>
    public static Task<Result> RunInMountNamespaceAsync(string script, IEnumerable<string> args, IReadOnlyDictionary<string, string>? env, CancellationToken ct) =>
        RunAsync(HostPrograms.Unshare.Name, ["--mount", "--propagation", "private", "--", HostPrograms.Sh.Name, "-c", script, "kiln-disk", .. args], env, ct);

    public static string Hint(string file) => HostPrograms.InstallHint(file);

    public static string Tail(string output, int lines = 15)
    {
        var all = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        return string.Join('\n', all.Skip(Math.Max(0, all.Length - lines)));
    }
}
