using System.Diagnostics;
using Kiln.Build.Sandbox;

namespace Kiln.Build.Testing.Vm;

/// <summary>Runs a host tool (cp, debugfs, qemu) as a child that dies with us (<c>setpriv --pdeathsig KILL</c>).</summary>
internal static class HostTool
{
    public static ProcessStartInfo StartInfo(string tool, IEnumerable<string> args, string? workingDirectory = null)
    {
        var psi = new ProcessStartInfo("setpriv")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? "/",
        };
        foreach (var a in (string[])["--pdeathsig", "KILL", "--", tool])
        {
            psi.ArgumentList.Add(a);
        }
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        return psi;
    }

    /// <summary>Runs the tool to its end; returns its exit status and output (stdout and stderr, interleaved).</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(string tool, IEnumerable<string> args, string? workingDirectory,
        CancellationToken ct)
    {
        var lines = new List<string>();
        int status = await ChildProcess.RunAsync(StartInfo(tool, args, workingDirectory), line =>
        {
            if (line is not null)
            {
                lock (lines)
                {
                    lines.Add(line);
                }
            }
        }, ct).ConfigureAwait(false);
        lock (lines)
        {
            return (status, string.Join('\n', lines));
        }
    }
}
