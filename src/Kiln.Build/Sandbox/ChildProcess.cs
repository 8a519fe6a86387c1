using System.ComponentModel;
using System.Diagnostics;

namespace Kiln.Build.Sandbox;

/// <summary>Starts a child process from a dedicated thread that lives until the child exits.</summary>
/// <remarks>PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the process; a
/// thread-pool thread can retire while a long step runs and would kill it. A dedicated thread can't.</remarks>
public static class ChildProcess
{
    /// <summary>Runs the process with stdin closed (empty), each output line (stdout and stderr) to
    /// <paramref name="onLine"/>; returns the exit status. On cancellation the whole tree is killed and
    /// awaited before <see cref="OperationCanceledException"/> is thrown.</summary>
    public static Task<int> RunAsync(ProcessStartInfo psi, Action<string?> onLine, CancellationToken cancellationToken)
    {
        var done = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                using var process = new Process { StartInfo = psi };
                process.OutputDataReceived += (_, e) => onLine(e.Data);
                process.ErrorDataReceived += (_, e) => onLine(e.Data);
                InheritedDescriptors.CloseOnExec();
                try
                {
                    process.Start();
                }
                catch (Win32Exception ex)
                {
                    throw SandboxException.SetupFailed($"cannot start '{psi.FileName}': {ex.Message}");
                }
                if (psi.RedirectStandardInput)
                {
                    process.StandardInput.Close();
                }
                process.BeginOutputReadLine();
                process.BeginErrorReadLine();
                using (cancellationToken.Register(() =>
                {
                    try
                    {
                        process.Kill(entireProcessTree: true);
                    }
                    catch (InvalidOperationException)
                    {
                    }
                }))
                {
                    process.WaitForExit();
                }
                if (cancellationToken.IsCancellationRequested)
                {
                    done.TrySetCanceled(cancellationToken);
                }
                else
                {
                    done.TrySetResult(process.ExitCode);
                }
            }
            catch (Exception ex)
            {
                done.TrySetException(ex);
            }
        })
        {
            IsBackground = true,
            Name = "kiln-child " + psi.FileName,
        };
        thread.Start();
        return done.Task;
    }
}
