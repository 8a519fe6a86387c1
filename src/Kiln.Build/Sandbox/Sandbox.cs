using System.Diagnostics;
using System.Text;

namespace Kiln.Build.Sandbox;

/// <summary>Runs a command in new mount, pid, uts and ipc namespaces (and a new network namespace unless
/// the host's is asked for), chrooted into an overlay of an image's layers.</summary>
/// <remarks>The namespaces come from util-linux's unshare(1) rather than clone(2) from .NET: a managed
/// runtime cannot safely fork into a single-threaded child. unshare starts this kiln executable again as
/// the namespace's PID 1 (<see cref="SandboxInit"/>), which mounts the root and execs the launcher.
/// Teardown is the kernel's: all mounts are in the private mount namespace and every process is in the pid
/// namespace, so when PID 1 dies, all is gone. PID 1 dies with unshare (--kill-child) and unshare dies with
/// us (setpriv --pdeathsig).</remarks>
public static class Sandbox
{
    public const string DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    /// <summary>Runs the command and returns its exit status. Output lines go to <paramref name="output"/>.
    /// Throws <see cref="SandboxException"/> when the sandbox itself could not be set up (status 125
    /// from the setup script) and <see cref="OperationCanceledException"/> when cancelled (after every
    /// process of the sandbox has exited).</summary>
    public static async Task<int> RunAsync(SandboxSpec spec, Action<string>? output = null, CancellationToken cancellationToken = default)
    {
        var run = await StartAsync(spec, output, cancellationToken).ConfigureAwait(false);
        int status = await run.Child.Exited.ConfigureAwait(false);
        if (status == 125 && run.SetupErrors.Length > 0)
        {
            throw SandboxException.SetupFailed(run.SetupErrors);
        }
        return status;
    }

    /// <summary>Starts the command and returns once its process runs (for long-running instances).
    /// Cancelling the token kills the sandbox.</summary>
    public static async Task<SandboxRun> StartAsync(SandboxSpec spec, Action<string>? output = null, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var psi = Prepare(spec);
        var run = new SandboxRun(output);
        run.Child = await ChildProcess.StartAsync(psi, run.OnLine, cancellationToken).ConfigureAwait(false);
        return run;
    }

    private static ProcessStartInfo Prepare(SandboxSpec spec)
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

        var init = SandboxInit.SelfCommand
            ?? throw SandboxException.SetupFailed($"no kiln executable to run the sandbox's init ({SandboxInit.Verb}) with");
        var psi = new ProcessStartInfo("setpriv")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        psi.Environment.Clear();
        psi.Environment["PATH"] = DefaultPath;
        // A JIT init (dotnet kiln.dll) would leave its diagnostics socket in /tmp: it execs, never shuts down.
        psi.Environment["DOTNET_EnableDiagnostics"] = "0";
        for (int i = 0; i < spec.SecretFiles.Count; i++)
        {
            psi.Environment[SandboxInit.SecretVariable(i)] = spec.SecretFiles[i].Value;
        }
        string[] prefix = ["--pdeathsig", "KILL", "--", "unshare", "--mount", "--pid", "--uts", "--ipc", "--fork", "--kill-child", "--propagation", "private"];
        foreach (var a in prefix)
        {
            psi.ArgumentList.Add(a);
        }
        if (!spec.HostNetwork)
        {
            psi.ArgumentList.Add("--net");
        }
        psi.ArgumentList.Add("--");
        foreach (var a in init)
        {
            psi.ArgumentList.Add(a);
        }
        List<string> launcher;
        if (spec.Launcher == SandboxLauncher.Nspawn)
        {
            launcher = ["systemd-nspawn", "-D", merged, "--register=no", "--keep-unit", "--private-network", "--boot", "--quiet", "--console=read-only", $"--hostname={spec.Hostname}"];
        }
        else
        {
            launcher = ["chroot"];
            if (spec.User is { Length: > 0 } user)
            {
                launcher.Add($"--userspec={user}");
            }
            // The image's shell enters the working directory; its cd would pass OLDPWD on to the command.
            launcher.AddRange([merged, "/bin/sh", "-c", "cd -- \"$0\" || exit 125; unset OLDPWD; exec \"$@\"", spec.WorkingDirectory]);
            launcher.AddRange(spec.Command);
        }
        foreach (var a in SandboxInit.Arguments(merged, links, lowerdir, spec.UpperDir, work, spec, binds, launcher))
        {
            psi.ArgumentList.Add(a);
        }
        return psi;
    }
}

/// <summary>A running sandbox: its process (unshare; the namespace's PID 1 is its only child) and output.</summary>
public sealed class SandboxRun
{
    private readonly Action<string>? _output;
    private readonly StringBuilder _setupErrors = new();

    internal SandboxRun(Action<string>? output) => _output = output;

    public RunningChild Child { get; internal set; } = null!;

    /// <summary>What the sandbox's own setup reported (lines starting "kiln-sandbox: ").</summary>
    public string SetupErrors
    {
        get
        {
            lock (_setupErrors)
            {
                return _setupErrors.ToString().Trim();
            }
        }
    }

    /// <summary>The host pid of the namespace's PID 1, once it exists (else null).</summary>
    public int? InitPid
    {
        get
        {
            try
            {
                var children = File.ReadAllText($"/proc/{Child.Pid}/task/{Child.Pid}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return children.Length > 0 && int.TryParse(children[0], out var pid) ? pid : null;
            }
            catch (IOException)
            {
                return null;
            }
        }
    }

    internal void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }
        if (line.StartsWith("kiln-sandbox: ", StringComparison.Ordinal))
        {
            lock (_setupErrors)
            {
                _setupErrors.AppendLine(line["kiln-sandbox: ".Length..]);
            }
        }
        _output?.Invoke(line);
    }
}
