using System.ComponentModel;
using System.Diagnostics;

namespace Kiln.Build.Sandbox;

/// <summary>A started child process: its pid, its exit, and a way to kill it with everything it started.</summary>
public sealed class RunningChild
{
    private readonly Process _process;

    internal RunningChild(Process process, Task<int> exited)
    {
        _process = process;
        Exited = exited;
        Pid = process.Id;
    }

    public int Pid { get; }

    /// <summary>Completes with the exit status (or cancellation) once the process has exited.</summary>
    public Task<int> Exited { get; }

    public void Kill()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
        }
    }
}

/// <summary>Starts a child process from a dedicated thread that lives until the child exits.</summary>
/// <remarks>PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the process; a
/// thread-pool thread can retire while a long step runs and would kill it. A dedicated thread can't.</remarks>
public static class ChildProcess
{
    /// <summary>Runs the process with stdin closed (empty), each output line (stdout and stderr) to
    /// <paramref name="onLine"/>; returns the exit status. On cancellation the whole tree is killed and
    /// awaited before <see cref="OperationCanceledException"/> is thrown.</summary>
    public static async Task<int> RunAsync(ProcessStartInfo psi, Action<string?> onLine, CancellationToken cancellationToken)
    {
        var child = await StartAsync(psi, onLine, cancellationToken).ConfigureAwait(false);
        return await child.Exited.ConfigureAwait(false);
    }

    /// <summary>Starts the process and returns once it runs. Cancelling the token kills it (and its tree).</summary>
    /// <param name="prepareThread">Run first on the thread that starts the child (e.g. moving it into namespaces the child
    /// inherits), with <paramref name="psi"/> to complete; what it throws is thrown here, and nothing is started. What it
    /// returns is disposed as soon as the child has started (or failed to), before anything else runs on the thread.</param>
    public static Task<RunningChild> StartAsync(ProcessStartInfo psi, Action<string?> onLine, CancellationToken cancellationToken,
        Func<ProcessStartInfo, IDisposable?>? prepareThread = null)
    {
        var started = new TaskCompletionSource<RunningChild>(TaskCreationOptions.RunContinuationsAsynchronously);
        var done = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                using var process = new Process { StartInfo = psi };
                process.OutputDataReceived += (_, e) => onLine(e.Data);
                process.ErrorDataReceived += (_, e) => onLine(e.Data);
                var prepared = prepareThread?.Invoke(psi);
                Win32Exception? failed = null;
                try
                {
                    InheritedDescriptors.CloseOnExec();
                    process.Start();
                }
                catch (Win32Exception ex)
                {
                    failed = ex;
                }
                finally
                {
                    prepared?.Dispose();
                }
                if (failed is not null)
                {
                    throw SandboxException.SetupFailed($"cannot start '{psi.FileName}': {failed.Message}");
                }
                if (psi.RedirectStandardInput)
                {
                    process.StandardInput.Close();
                }
                process.BeginOutputReadLine();
                process.BeginErrorReadLine();
                var child = new RunningChild(process, done.Task);
                started.TrySetResult(child);
                using (cancellationToken.Register(child.Kill))
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
                started.TrySetException(ex);
                done.TrySetException(ex);
            }
        })
        {
            IsBackground = true,
            Name = "kiln-child " + psi.FileName,
        };
        thread.Start();
        return started.Task;
    }
}
