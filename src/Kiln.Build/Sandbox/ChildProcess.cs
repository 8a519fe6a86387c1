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

/// <summary>Starts child processes from dedicated threads that never end.</summary>
/// <remarks>PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the process; a
/// thread-pool thread can retire while a long step runs and would kill it. A starter thread lives as long as kiln, and
/// goes back to waiting for the next start as soon as its child runs. Making a thread costs this runtime more than the
/// thread: the maker yields the CPU until the new thread runs, which on a busy machine is hundreds of sched_yield calls;
/// <see cref="Prestart"/> makes them ahead of need, off the path a build waits on.</remarks>
public static class ChildProcess
{
    private static readonly Lock s_gate = new();
    private static readonly Stack<Starter> s_idle = new();
    private static int s_count;

    /// <summary>Runs the process with stdin closed (empty), each output line (stdout and stderr) to
    /// <paramref name="onLine"/>; returns the exit status. On cancellation the whole tree is killed and
    /// awaited before <see cref="OperationCanceledException"/> is thrown.</summary>
    public static async Task<int> RunAsync(ProcessStartInfo psi, Action<string?> onLine, CancellationToken cancellationToken)
    {
        var child = await StartAsync(psi, onLine, cancellationToken).ConfigureAwait(false);
        return await child.Exited.ConfigureAwait(false);
    }

    /// <summary>Makes starter threads in the background until <paramref name="count"/> exist (idle or busy).</summary>
    public static void Prestart(int count)
    {
        int wanted;
        lock (s_gate)
        {
            wanted = count - s_count;
            if (wanted <= 0)
            {
                return;
            }
            s_count += wanted;
        }
        _ = Task.Run(() =>
        {
            // The runtime's timer thread too (a sandbox's time limit and the tests' waits use it), made on first use; and
            // its wait thread, which watches for a child's exit (WaitForExitAsync registers a wait), made on the first.
            // A thread's start yields the CPU until the thread runs: better here, while a step runs, than amid the tests.
            using (new Timer(static _ => { }, null, 0, Timeout.Infinite))
            using (var never = new ManualResetEvent(false))
            {
                ThreadPool.RegisterWaitForSingleObject(never, static (_, _) => { }, null, Timeout.Infinite, executeOnlyOnce: true).Unregister(null);
            }
            for (int i = 0; i < wanted; i++)
            {
                var starter = new Starter();
                lock (s_gate)
                {
                    s_idle.Push(starter);
                }
            }
        });
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
        Starter? starter;
        lock (s_gate)
        {
            if (!s_idle.TryPop(out starter))
            {
                s_count++;
            }
        }
        (starter ?? new Starter()).Run(() => Start(psi, onLine, cancellationToken, prepareThread, started, done));
        return started.Task;
    }

    /// <summary>On a starter thread: starts the child, then leaves waiting for its exit to the runtime (its SIGCHLD
    /// handling), so the thread is free again.</summary>
    private static void Start(ProcessStartInfo psi, Action<string?> onLine, CancellationToken cancellationToken,
        Func<ProcessStartInfo, IDisposable?>? prepareThread, TaskCompletionSource<RunningChild> started, TaskCompletionSource<int> done)
    {
        Process? process = new() { StartInfo = psi };
        try
        {
            var lines = new LineRelay(onLine);
            process.OutputDataReceived += (_, e) => lines.Relay(e.Data);
            process.ErrorDataReceived += (_, e) => lines.Relay(e.Data);
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
            // A child on kiln's own terminal (an interactive shell) writes there itself.
            if (psi.RedirectStandardOutput)
            {
                process.BeginOutputReadLine();
            }
            if (psi.RedirectStandardError)
            {
                process.BeginErrorReadLine();
            }
            var child = new RunningChild(process, done.Task);
            lines.Child = child; // before the first line can come
            _ = WaitAsync(process, child, lines, done, cancellationToken);
            process = null; // WaitAsync owns it now
            started.TrySetResult(child);
        }
        catch (Exception ex)
        {
            process?.Dispose();
            started.TrySetException(ex);
            done.TrySetException(ex);
        }
    }

    private static async Task WaitAsync(Process process, RunningChild child, LineRelay lines, TaskCompletionSource<int> done, CancellationToken cancellationToken)
    {
        try
        {
            using (cancellationToken.Register(child.Kill))
            {
                // Also waits for the end of its output, as WaitForExit() does.
                await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            }
            if (lines.Failure is { } failure)
            {
                done.TrySetException(failure);
            }
            else if (cancellationToken.IsCancellationRequested)
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
        finally
        {
            process.Dispose();
        }
    }

    /// <summary>Passes output lines on. The line handler runs on the runtime's thread that reads the output, where an
    /// exception would end the process (an abort): the first one is kept instead, the child killed, and the exception
    /// becomes the child's end, thrown to whoever awaits it.</summary>
    private sealed class LineRelay(Action<string?> onLine)
    {
        private Exception? _failure;

        public RunningChild? Child { get; set; }

        public Exception? Failure => Volatile.Read(ref _failure);

        public void Relay(string? line)
        {
            if (Volatile.Read(ref _failure) is not null)
            {
                return;
            }
            try
            {
                onLine(line);
            }
            catch (Exception ex)
            {
                if (Interlocked.CompareExchange(ref _failure, ex, null) is null)
                {
                    Child?.Kill();
                }
            }
        }
    }

    /// <summary>A thread that runs one start at a time and never ends; idle, it waits for the next (in Monitor.Wait,
    /// which does not spin).</summary>
    private sealed class Starter
    {
        private readonly object _gate = new();
        private Action? _work;

        public Starter()
        {
            new Thread(Loop) { IsBackground = true, Name = "kiln-child starter" }.Start();
        }

        public void Run(Action work)
        {
            lock (_gate)
            {
                _work = work;
                Monitor.Pulse(_gate);
            }
        }

        private void Loop()
        {
            while (true)
            {
                Action work;
                lock (_gate)
                {
                    while (_work is null)
                    {
                        Monitor.Wait(_gate);
                    }
                    work = _work;
                    _work = null;
                }
                work();
                lock (s_gate)
                {
                    s_idle.Push(this);
                }
            }
        }
    }
}
