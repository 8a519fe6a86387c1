using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Kiln.Build.Sandbox;

/// <summary>Runs a command in new mount, pid, uts and ipc namespaces (and a new network namespace unless
/// the host's is asked for), chrooted into an overlay of an image's layers.</summary>
/// <remarks>The thread that starts the command enters new namespaces and builds the root there
/// (<see cref="SandboxSetup"/>); its child is kiln-sandbox-exec (<c>kiln-sandbox-exec.c</c>), the pid namespace's PID 1,
/// which dies with that thread, mounts /proc, enters the root and the working directory and execs the command (or
/// chroot(8), for another user, or systemd-nspawn). Teardown is the kernel's: every mount is in the sandbox's mount
/// namespace and every process in its pid namespace, so when PID 1 dies, all is gone. PID 1 dies with the thread (by
/// its parent-death signal), the thread once the child exits or kiln does.</remarks>
public static class Sandbox
{
    public const string DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    /// <summary>Runs the command and returns its exit status. Output lines go to <paramref name="output"/>.
    /// Throws <see cref="SandboxException"/> when the sandbox itself could not be set up and
    /// <see cref="OperationCanceledException"/> when cancelled (after every process of the sandbox has exited).</summary>
    public static async Task<int> RunAsync(SandboxSpec spec, Action<string>? output = null, CancellationToken cancellationToken = default)
    {
        var run = await StartAsync(spec, output, cancellationToken).ConfigureAwait(false);
        return await run.Child.Exited.ConfigureAwait(false);
    }

    /// <summary>Starts the command and returns once its process runs (for long-running instances).
    /// Cancelling the token kills the sandbox.</summary>
    public static async Task<SandboxRun> StartAsync(SandboxSpec spec, Action<string>? output = null, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var (psi, plan, procMountPoint) = Prepare(spec);
        var run = new SandboxRun(output);
        run.Child = await ChildProcess.StartAsync(psi, run.OnLine, cancellationToken, psi =>
        {
            var entered = SandboxSetup.Enter(plan);
            // /proc is mounted by the pid namespace's first process (it must be inside it), before the command: not where
            // the image has made /proc a symlink (seen only now, in the root). systemd-nspawn mounts its own.
            if (procMountPoint is not null && SandboxSetup.CanMountProc(plan.Merged))
            {
                psi.ArgumentList.Insert(0, "--proc");
                psi.ArgumentList.Insert(1, procMountPoint);
            }
            return entered;
        }).ConfigureAwait(false);
        return run;
    }

    /// <returns>Also where kiln-sandbox-exec is to mount /proc (a host path), or null for none.</returns>
    private static (ProcessStartInfo Psi, SandboxSetup.Plan Plan, string? ProcMountPoint) Prepare(SandboxSpec spec)
    {
        var merged = Path.Combine(spec.ScratchDir, "merged");
        var work = Path.Combine(spec.ScratchDir, "work");
        var skeleton = Path.Combine(spec.ScratchDir, "skeleton");
        Directory.CreateDirectory(merged);
        Directory.CreateDirectory(work);
        Directory.CreateDirectory(skeleton);
        Directory.CreateDirectory(spec.UpperDir);

        var binds = MountSkeleton.Prepare(skeleton, spec);
        var lowers = new List<string> { skeleton };
        lowers.AddRange(spec.LowerDirsTopFirst);
        foreach (var dir in lowers)
        {
            if (dir.Contains(':') || dir.Contains(','))
            {
                throw SandboxException.SetupFailed($"layer path '{dir}' contains ':' or ',' which overlayfs cannot take");
            }
        }

        var links = Path.Combine(spec.ScratchDir, "l");
        var lowerdir = OverlayLowerLinks.Create(links, lowers);
        bool nspawn = spec.Launcher == SandboxLauncher.Nspawn;
        var plan = new SandboxSetup.Plan(merged, links, lowerdir, spec.UpperDir, work, spec.Hostname, NewNetwork: !spec.HostNetwork,
            SystemMounts: !nspawn, binds, spec.SecretFiles, spec.Recorder);

        // Host programs by absolute path: the environment below is the image's, PATH included.
        var psi = new ProcessStartInfo(s_sandboxExec.Value)
        {
            RedirectStandardOutput = !spec.Terminal,
            RedirectStandardError = !spec.Terminal,
            RedirectStandardInput = !spec.Terminal,
            UseShellExecute = false,
        };
        psi.Environment.Clear();
        foreach (var (k, v) in spec.Environment)
        {
            psi.Environment[k] = v;
        }
        // --proc may come first (see StartAsync).
        List<string> args = ["--parent", Environment.ProcessId.ToString(CultureInfo.InvariantCulture)];
        // systemd-nspawn mounts its own /proc.
        string? proc = nspawn ? null : merged + "/proc";
        if (nspawn)
        {
            args.AddRange(["--", HostPrograms.Resolve(HostPrograms.SystemdNspawn), "-D", merged, "--register=no", "--keep-unit", "--private-network", "--boot", "--quiet",
                "--console=read-only", $"--hostname={spec.Hostname}"]);
        }
        else if (spec.User is { Length: > 0 } user)
        {
            // chroot(8) changes the user, which clears a process's death signal: PID 1 stays a waiting init that keeps it.
            args.AddRange(["--init", "yes"]);
            // chroot(8) looks the user and its groups up in the image, then drops to them; the image's shell enters the
            // working directory (its cd would pass OLDPWD on to the command) and opens the output files as that user.
            var redirect = spec.OutputFiles is null ? "" : "exec >\"$1\" 2>\"$2\" </dev/null; shift 2; ";
            args.AddRange(["--", HostPrograms.Resolve(HostPrograms.Chroot), $"--userspec={user}", merged,
                "/bin/sh", "-c", "cd -- \"$0\" || exit 125; unset OLDPWD; " + redirect + "exec \"$@\"", spec.WorkingDirectory]);
            if (spec.OutputFiles is { } files)
            {
                args.AddRange([files.Stdout, files.Stderr]);
            }
            args.AddRange(spec.Command);
        }
        else
        {
            args.AddRange(["--root", merged, "--wd", spec.WorkingDirectory]);
            if (spec.OutputFiles is { } files)
            {
                args.AddRange(["--stdout", files.Stdout, "--stderr", files.Stderr]);
            }
            if (spec.CommandAsChild)
            {
                args.AddRange(["--init", "yes"]);
            }
            args.Add("--");
            args.AddRange(spec.Command);
        }
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        return (psi, plan, proc);
    }

    /// <summary>kiln-sandbox-exec (Sandbox/kiln-sandbox-exec.c), built and shipped beside kiln.</summary>
    private static readonly Lazy<string> s_sandboxExec = new(static () =>
    {
        var path = Path.Combine(AppContext.BaseDirectory, "kiln-sandbox-exec");
        return File.Exists(path) ? path
            : throw SandboxException.SetupFailed($"{path}: not found; kiln-sandbox-exec is built with kiln and must stay beside it");
    });
}

/// <summary>A running sandbox: its process (kiln-sandbox-exec, the namespace's PID 1, which has become the command or,
/// for another user or systemd-nspawn, waits for it) and output.</summary>
public sealed class SandboxRun
{
    private readonly Action<string>? _output;

    internal SandboxRun(Action<string>? output) => _output = output;

    public RunningChild Child { get; internal set; } = null!;

    /// <summary>The host pid of the namespace's PID 1 (the process kiln started), while it runs (else null).</summary>
    public int? InitPid => Child.Exited.IsCompleted ? null : Child.Pid;

    internal void OnLine(string? line)
    {
        if (line is not null)
        {
            _output?.Invoke(line);
        }
    }
}
