using System.Diagnostics;
using System.Text;

namespace Kiln.Build.Sandbox;

/// <summary>Runs a host tool (cp, debugfs, mkfs, qemu, ...) as a child that dies with us (<c>setpriv --pdeathsig KILL</c>)
/// and is killed when cancelled, collecting its stdout and stderr lines as they come.</summary>
public static class HostCommand
{
    /// <param name="environment">Null: the child inherits ours. Otherwise the child gets only PATH (the sandbox's
    /// default), LC_ALL=C and these variables.</param>
    public static ProcessStartInfo StartInfo(string tool, IEnumerable<string> args, string? workingDirectory = null,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo(HostPrograms.Setpriv.Name)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? "/",
        };
        if (environment is not null)
        {
            psi.Environment.Clear();
            psi.Environment["PATH"] = Sandbox.DefaultPath;
            psi.Environment["LC_ALL"] = "C";
            foreach (var (k, v) in environment)
            {
                psi.Environment[k] = v;
            }
        }
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

    /// <summary>Runs the tool to its end; returns its exit status and output (stdout and stderr lines, interleaved).</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(ProcessStartInfo psi, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(psi);
        var output = new StringBuilder();
        int status = await ChildProcess.RunAsync(psi, line =>
        {
            if (line is not null)
            {
                lock (output)
                {
                    output.AppendLine(line);
                }
            }
        }, ct).ConfigureAwait(false);
        lock (output)
        {
            return (status, output.ToString().TrimEnd('\n'));
        }
    }
}
