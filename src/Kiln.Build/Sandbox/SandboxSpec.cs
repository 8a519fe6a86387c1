namespace Kiln.Build.Sandbox;

/// <summary>A bind mount into the sandbox: a host path made visible at an absolute path inside the image.</summary>
public sealed record BindMount(string HostPath, string ImagePath, bool ReadOnly = false);

/// <summary>What to run and on which filesystem. The root is an overlay of <see cref="LowerDirsTopFirst"/>
/// with <see cref="UpperDir"/> on top; everything else the sandbox needs is mounted for the run only.</summary>
public sealed record SandboxSpec
{
    /// <summary>The image's layer snapshots, topmost first. May be empty for a scratch image.</summary>
    public required IReadOnlyList<string> LowerDirsTopFirst { get; init; }

    /// <summary>An empty directory that receives every change (the step's layer).</summary>
    public required string UpperDir { get; init; }

    /// <summary>A scratch directory for the sandbox's own use (overlay work dir, mount point, skeleton).
    /// Must be on the same filesystem as <see cref="UpperDir"/>.</summary>
    public required string ScratchDir { get; init; }

    /// <summary>The command and its arguments, run inside the image.</summary>
    public required IReadOnlyList<string> Command { get; init; }

    /// <summary>The environment inside; nothing of the host's environment is passed.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Environment { get; init; } = [];

    public string WorkingDirectory { get; init; } = "/";

    /// <summary>Files in the image (e.g. under a bind) that the command's stdout and stderr go to, opened after entering
    /// the root and the working directory, as the command's user (by kiln-sandbox-exec, or by the image's shell for
    /// another user than root), with stdin from /dev/null; null: both go to the sandbox's output. Not with
    /// <see cref="SandboxLauncher.Nspawn"/>.</summary>
    public (string Stdout, string Stderr)? OutputFiles { get; init; }

    /// <summary>USER[:GROUP] as chroot(8) --userspec takes it, or null for root.</summary>
    public string? User { get; init; }

    /// <summary>PID 1 forks the command and waits for it, reaping orphans, as a shell would between PID 1 and a program
    /// it runs (a command of <see cref="ShellWords.Plain"/> words, run without the shell); false: the command is PID 1.
    /// Always so for <see cref="User"/>.</summary>
    public bool CommandAsChild { get; init; }

    /// <summary>True: the host's network namespace. False: a fresh one with only loopback.</summary>
    public bool HostNetwork { get; init; }

    /// <summary>Give the host's resolv.conf (as a copy) to the image.</summary>
    public bool ResolvConf { get; init; } = true;

    /// <summary>Install a policy-rc.d that stops package scripts from starting services.</summary>
    public bool PolicyRcD { get; init; } = true;

    public IReadOnlyList<BindMount> Binds { get; init; } = [];

    /// <summary>Executable scripts (mode 0755) at the root of the sandbox's skeleton layer, by file name: the command
    /// sees them, its layer never holds them.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> SkeletonScripts { get; init; } = [];

    /// <summary>Files written (mode 0400) into a tmpfs at <see cref="SecretsDir"/> that only the sandbox's mount namespace
    /// has, by name; the values never touch the host's disk nor any process's environment. The tmpfs is read-only once
    /// written and goes with the mount namespace, also after a crash. Binds below that dir are still made.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> SecretFiles { get; init; } = [];

    public const string SecretsDir = "/run/secrets";

    public string Hostname { get; init; } = "kiln";

    /// <summary>How the command is started in the root: chrooted (by kiln-sandbox-exec, or chroot(8) for another user than
    /// root), or by systemd-nspawn booting the image's init (which mounts /proc, /sys and /dev itself and gets its own
    /// loopback-only network).</summary>
    public SandboxLauncher Launcher { get; init; } = SandboxLauncher.Chroot;

    /// <summary>The command's stdin, stdout and stderr are kiln's own (an interactive shell on the terminal), so no
    /// output lines are reported; false: stdin is empty and the output comes as lines.</summary>
    public bool Terminal { get; init; }
    /// <summary>Records what the sandbox's processes open and execute (see <see cref="AccessRecorder"/>), or null.</summary>
    public AccessRecorder? Recorder { get; init; }
}

public enum SandboxLauncher { Chroot, Nspawn }
