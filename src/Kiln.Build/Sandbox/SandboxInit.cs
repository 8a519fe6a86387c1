using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;

namespace Kiln.Build.Sandbox;

/// <summary>The first process inside the sandbox's namespaces: it builds the root with mount(2) and then
/// execs the launcher (chroot or systemd-nspawn). It runs as <c>kiln __sandbox-init ARGS</c>, started by
/// unshare(1); all its mounts live in the private mount namespace, so the kernel removes them when the
/// namespace's last process exits, also after a crash or SIGKILL.</summary>
/// <remarks>It makes the mounts itself rather than through a shell calling mount(8) a dozen times: that
/// cost about 30 ms per sandbox on the reference machine (every run step, every bake command, every boot
/// instance). A failure is reported on stderr as "kiln-sandbox: WHAT" with exit status 125.</remarks>
public static unsafe partial class SandboxInit
{
    /// <summary>The hidden first argument of the kiln command that runs <see cref="Run"/>.</summary>
    public const string Verb = "__sandbox-init";

    public const int SetupFailed = 125;

    private const ulong MS_RDONLY = 1, MS_NOSUID = 2, MS_NODEV = 4, MS_NOEXEC = 8, MS_REMOUNT = 32,
        MS_BIND = 4096, MS_REC = 16384;

    private static readonly Lazy<IReadOnlyList<string>?> s_self = new(FindSelf);

    /// <summary>How this process runs the init: the kiln executable itself (NativeAOT), or the dotnet host with
    /// kiln.dll (a JIT build, as the tests run it). Null when neither is found (a host other than kiln).</summary>
    public static IReadOnlyList<string>? SelfCommand => s_self.Value;

    private static IReadOnlyList<string>? FindSelf()
    {
        var processPath = Environment.ProcessPath;
        bool dotnetHost = processPath is not null && Path.GetFileNameWithoutExtension(processPath) == "dotnet";
        if (processPath is not null && !dotnetHost && Assembly.GetEntryAssembly()?.GetName().Name == "kiln")
        {
            // This very binary, even if a newer kiln has replaced the file meanwhile (the init's arguments are
            // a private protocol between the two). The host's /proc is still mounted when unshare execs it.
            return [$"/proc/{Environment.ProcessId}/exe", Verb];
        }
        // kiln.dll under the dotnet host: the kiln command run as a JIT build, or a test host beside it.
        var dll = Path.Combine(AppContext.BaseDirectory, "kiln.dll");
        if (!File.Exists(dll))
        {
            return null;
        }
        var host = dotnetHost ? processPath! : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        return [host, dll, Verb];
    }

    /// <summary>The arguments <see cref="Run"/> takes, for a root at <paramref name="merged"/>.</summary>
    /// <param name="links">The dir of <see cref="OverlayLowerLinks"/>; the overlay is mounted from there with
    /// <paramref name="lowerdir"/>, its short relative names.</param>
    internal static List<string> Arguments(string merged, string links, string lowerdir, string upper, string work,
        SandboxSpec spec, IReadOnlyList<BindMount> binds, IReadOnlyList<string> launcher)
    {
        var args = new List<string>
        {
            "--merged", merged, "--lower-links", links,
            "--lower", lowerdir,
            "--upper", upper, "--work", work, "--hostname", spec.Hostname,
        };
        if (!spec.HostNetwork)
        {
            args.Add("--loopback");
        }
        if (spec.Launcher == SandboxLauncher.Nspawn)
        {
            args.Add("--no-system-mounts");
        }
        foreach (var (name, _) in spec.SecretFiles)
        {
            args.AddRange(["--secret", name]);
        }
        foreach (var b in binds)
        {
            args.AddRange(["--bind", b.HostPath, b.ImagePath, b.ReadOnly ? "ro" : "rw"]);
        }
        foreach (var (k, v) in spec.Environment)
        {
            args.AddRange(["--env", $"{k}={v}"]);
        }
        args.Add("--");
        args.AddRange(launcher);
        return args;
    }

    /// <summary>Builds the root and execs the launcher; returns only on failure (with the exit status), having
    /// written why to <paramref name="error"/>.</summary>
    public static int Run(IReadOnlyList<string> args, TextWriter error)
    {
        try
        {
            // Only inside the namespaces unshare made (where it is PID 1): run by hand, it would mount on the host.
            if (Environment.ProcessId != 1)
            {
                throw new InitException($"{Verb} is kiln's own: it runs only as PID 1 of a sandbox that kiln starts");
            }
            var a = Parse(args);
            if (a.LowerLinks is { } links)
            {
                Directory.SetCurrentDirectory(links);
            }
            Mount("kiln-root", a.Merged, "overlay", 0, $"lowerdir={a.Lower},upperdir={a.Upper},workdir={a.Work},{OverlayLowerLinks.FixedFeatures}",
                "overlay mount failed");
            if (a.SystemMounts)
            {
                SystemMounts(a.Merged);
            }
            if (a.Secrets.Count > 0)
            {
                Secrets(a.Merged, a.Secrets, a.Binds);
            }
            foreach (var (src, dst, ro) in a.Binds)
            {
                var target = a.Merged + dst;
                Mount(src, target, null, MS_BIND, null, $"binding {src} to {dst} failed");
                if (ro)
                {
                    // A remount replaces the mount's flags: keep the source's nosuid, nodev and noexec.
                    Mount(null, target, null, MS_REMOUNT | MS_BIND | MS_RDONLY | SourceFlags(src), null, $"making {dst} read-only failed");
                }
            }
            if (a.Loopback)
            {
                LoopbackUp();
            }
            var name = Encoding.UTF8.GetBytes(a.Hostname);
            fixed (byte* p = name)
            {
                _ = sethostname(p, (nuint)name.Length);
            }
            var path = Resolve(a.Command[0]);
            if (path is null)
            {
                error.WriteLine($"kiln-sandbox: {a.Command[0]}: not found on the host ({Sandbox.DefaultPath})");
                return 127;
            }
            Exec(path, a.Command, a.Environment);
            int errno = Marshal.GetLastPInvokeError();
            error.WriteLine($"kiln-sandbox: cannot run {path}: {Marshal.GetPInvokeErrorMessage(errno)}");
            return 126;
        }
        catch (Exception ex) when (ex is InitException or IOException or UnauthorizedAccessException)
        {
            error.WriteLine("kiln-sandbox: " + ex.Message);
            return SetupFailed;
        }
    }

    private static void SystemMounts(string m)
    {
        if (PlainDirectory(m + "/proc"))
        {
            Mount("kiln-proc", m + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, null, "mounting /proc failed");
        }
        if (PlainDirectory(m + "/sys") && mount("kiln-sys", m + "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, null) != 0)
        {
            Mount("/sys", m + "/sys", null, MS_BIND | MS_REC, null, "mounting /sys failed");
            Mount(null, m + "/sys", null, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, null, "mounting /sys failed");
        }
        if (!PlainDirectory(m + "/dev"))
        {
            return;
        }
        var dev = m + "/dev";
        Mount("kiln-dev", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=65536k", "mounting /dev failed");
        foreach (var d in new[] { "null", "zero", "full", "random", "urandom", "tty" })
        {
            File.WriteAllBytes($"{dev}/{d}", []);
            Mount("/dev/" + d, $"{dev}/{d}", null, MS_BIND, null, $"binding /dev/{d} failed");
        }
        foreach (var d in new[] { "pts", "shm", "mqueue" })
        {
            Directory.CreateDirectory($"{dev}/{d}");
        }
        Mount("kiln-devpts", dev + "/pts", "devpts", 0, "newinstance,ptmxmode=0666,mode=0620", "mounting /dev/pts failed");
        File.CreateSymbolicLink(dev + "/ptmx", "pts/ptmx");
        Mount("kiln-shm", dev + "/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", "mounting /dev/shm failed");
        File.CreateSymbolicLink(dev + "/fd", "/proc/self/fd");
        File.CreateSymbolicLink(dev + "/stdin", "/proc/self/fd/0");
        File.CreateSymbolicLink(dev + "/stdout", "/proc/self/fd/1");
        File.CreateSymbolicLink(dev + "/stderr", "/proc/self/fd/2");
    }

    /// <summary>The variable of the init's environment that carries secret number <paramref name="index"/>.</summary>
    public static string SecretVariable(int index) => $"KILN_SECRET_{index}";

    /// <summary>A tmpfs at /run/secrets holding each secret as a 0400 file (and the mount points of the binds that
    /// land below it), then made read-only. The values come from this process's environment, which the exec of
    /// the launcher does not pass on.</summary>
    private static void Secrets(string merged, List<string> names, List<(string Source, string Target, bool ReadOnly)> binds)
    {
        var dir = merged + SandboxSpec.SecretsDir;
        var values = names.Select((n, i) => Environment.GetEnvironmentVariable(SecretVariable(i))
            ?? throw new InitException($"secret '{n}' has no value")).ToList();
        long size = 65536 + values.Sum(v => (long)Encoding.UTF8.GetByteCount(v));
        Mount("kiln-secrets", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, $"mode=0755,size={size}", "mounting the secrets tmpfs failed");
        for (int i = 0; i < names.Count; i++)
        {
            if (names[i].Contains('/') || names[i] is "." or "..")
            {
                throw new InitException($"secret name '{names[i]}' is not a file name");
            }
            using var f = new FileStream(Path.Combine(dir, names[i]), new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                UnixCreateMode = UnixFileMode.UserRead,
            });
            f.Write(Encoding.UTF8.GetBytes(values[i]));
        }
        foreach (var (source, target, _) in binds.Where(b => b.Target.StartsWith(SandboxSpec.SecretsDir + "/", StringComparison.Ordinal)))
        {
            var point = merged + target;
            if (Directory.Exists(source))
            {
                Directory.CreateDirectory(point);
            }
            else if (!File.Exists(point))
            {
                Directory.CreateDirectory(Path.GetDirectoryName(point)!);
                File.WriteAllBytes(point, []);
            }
        }
        Mount(null, dir, null, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, null, "making the secrets tmpfs read-only failed");
    }

    /// <summary>A directory that is not a symlink (the image may have replaced /proc with a link).</summary>
    private static bool PlainDirectory(string path)
    {
        var info = new DirectoryInfo(path);
        return info.Exists && info.LinkTarget is null;
    }

    private static void Mount(string? source, string target, string? fstype, ulong flags, string? data, string what)
    {
        if (mount(source, target, fstype, flags, data) != 0)
        {
            throw new InitException($"{what}: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
        }
    }

    /// <summary>The nosuid, nodev and noexec flags of the mount that holds <paramref name="path"/> (the ST_
    /// values of statvfs equal the MS_ ones for these three).</summary>
    private static ulong SourceFlags(string path)
    {
        byte* buf = stackalloc byte[112];
        if (statvfs(path, buf) != 0)
        {
            return 0;
        }
        ulong flags = *(ulong*)(buf + 72); // f_flag in x86_64 glibc's struct statvfs
        return flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC);
    }

    /// <summary>Sets lo up in the new network namespace (SIOCSIFFLAGS on a socket, as ip(8) would by netlink);
    /// failure is not fatal: a command that needs no network still runs.</summary>
    private static void LoopbackUp()
    {
        const int AF_INET = 2, SOCK_DGRAM = 2, SIOCGIFFLAGS = 0x8913, SIOCSIFFLAGS = 0x8914, IFF_UP = 1;
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        if (fd < 0)
        {
            return;
        }
        byte* ifr = stackalloc byte[40]; // struct ifreq: char name[16]; union { short flags; ... }
        new Span<byte>(ifr, 40).Clear();
        "lo"u8.CopyTo(new Span<byte>(ifr, 16));
        if (ioctl(fd, SIOCGIFFLAGS, ifr) == 0)
        {
            *(short*)(ifr + 16) |= IFF_UP;
            _ = ioctl(fd, SIOCSIFFLAGS, ifr);
        }
        _ = close(fd);
    }

    /// <summary>The launcher is a host program (chroot, systemd-nspawn): look it up on the host's PATH, not
    /// the image's.</summary>
    private static string? Resolve(string command)
    {
        if (command.Contains('/'))
        {
            return command;
        }
        foreach (var dir in Sandbox.DefaultPath.Split(':'))
        {
            var candidate = Path.Combine(dir, command);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }
        return null;
    }

    private static void Exec(string path, IReadOnlyList<string> argv, IReadOnlyList<string> env)
    {
        var pArgv = stackalloc nint[argv.Count + 1];
        var pEnv = stackalloc nint[env.Count + 1];
        for (int i = 0; i < argv.Count; i++)
        {
            pArgv[i] = Marshal.StringToCoTaskMemUTF8(argv[i]);
        }
        pArgv[argv.Count] = 0;
        for (int i = 0; i < env.Count; i++)
        {
            pEnv[i] = Marshal.StringToCoTaskMemUTF8(env[i]);
        }
        pEnv[env.Count] = 0;
        _ = execve(path, pArgv, pEnv);
    }

    private sealed record InitArgs(string Merged, string? LowerLinks, string Lower, string Upper, string Work, string Hostname, bool Loopback,
        bool SystemMounts, List<(string Source, string Target, bool ReadOnly)> Binds, List<string> Secrets, List<string> Environment, List<string> Command);

    private static InitArgs Parse(IReadOnlyList<string> args)
    {
        string? merged = null, links = null, lower = null, upper = null, work = null, hostname = "kiln";
        bool loopback = false, system = true;
        var binds = new List<(string, string, bool)>();
        var secrets = new List<string>();
        var env = new List<string>();
        int i = 0;
        string Next() => i < args.Count ? args[i++] : throw new InitException("missing argument");
        while (i < args.Count)
        {
            var a = args[i++];
            switch (a)
            {
                case "--merged": merged = Next(); break;
                case "--lower": lower = Next(); break;
                case "--lower-links": links = Next(); break;
                case "--upper": upper = Next(); break;
                case "--work": work = Next(); break;
                case "--hostname": hostname = Next(); break;
                case "--loopback": loopback = true; break;
                case "--no-system-mounts": system = false; break;
                case "--bind": binds.Add((Next(), Next(), Next() == "ro")); break;
                case "--env": env.Add(Next()); break;
                case "--secret": secrets.Add(Next()); break;
                case "--":
                    var command = args.Skip(i).ToList();
                    if (merged is null || lower is null || upper is null || work is null || command.Count == 0)
                    {
                        throw new InitException("usage: kiln " + Verb + " --merged DIR --lower DIRS --upper DIR --work DIR [...] -- COMMAND");
                    }
                    return new InitArgs(merged, links, lower, upper, work, hostname, loopback, system, binds, secrets, env, command);
                default: throw new InitException($"unknown argument '{a}'");
            }
        }
        throw new InitException("usage: kiln " + Verb + " ... -- COMMAND");
    }

    private sealed class InitException(string message) : Exception(message);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int mount(string? source, string target, string? fstype, ulong flags, string? data);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int statvfs(string path, byte* buf);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int sethostname(byte* name, nuint len);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int socket(int domain, int type, int protocol);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int ioctl(int fd, ulong request, byte* arg);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int execve(string path, nint* argv, nint* envp);
}
