using System.Runtime.InteropServices;
using System.Text;

namespace Kiln.Build.Sandbox;

/// <summary>What a sandbox needs before its command starts: new mount, uts, ipc, pid (and network) namespaces for the
/// thread that will start it, and in them the root (an overlay of the layers), /sys, /dev, the secrets and the
/// binds, loopback up and the hostname. The thread's child process inherits them all and is the pid namespace's PID 1
/// (a new pid namespace takes only the children of the thread that made it): kiln-sandbox-exec, which mounts /proc
/// (which only a process inside that namespace can).</summary>
/// <remarks>Linux gives namespaces per thread: unshare(2) with CLONE_NEWNS also gives the calling thread a root and
/// working directory of its own, so nothing of this reaches kiln's other threads. The thread (<see cref="ChildProcess"/>'s
/// dedicated one) goes back to kiln's namespaces as soon as the child has started (<see cref="Entered"/>); the sandbox's
/// live on in the child alone and go with it, also after a crash. It used to run as a first process in the namespaces
/// (kiln itself again); that cost a runtime start per sandbox, about 2 ms of CPU, and more while other sandboxes
/// ran.</remarks>
internal static unsafe partial class SandboxSetup
{
    private const ulong MS_RDONLY = 1, MS_NOSUID = 2, MS_NODEV = 4, MS_NOEXEC = 8, MS_REMOUNT = 32,
        MS_BIND = 4096, MS_REC = 16384, MS_PRIVATE = 1 << 18;

    private const int CLONE_NEWNS = 0x00020000, CLONE_NEWUTS = 0x04000000, CLONE_NEWIPC = 0x08000000, CLONE_NEWPID = 0x20000000,
        CLONE_NEWNET = 0x40000000;

    /// <summary>The runtime's signal thread (which also reaps child processes) is made on first use, from whichever thread
    /// uses it first: a registration made here, before any thread enters a sandbox's namespaces, makes sure that is not
    /// the thread starting the first sandbox (in kiln's command the thread exists from the start; a host of the library
    /// may not have it yet). The handler does nothing: the runtime's own handling of SIGCHLD goes on.</summary>
    private static readonly Lazy<PosixSignalRegistration> s_signalThread = new(() => PosixSignalRegistration.Create(PosixSignal.SIGCHLD, static _ => { }));

    /// <summary>The root to build: <paramref name="Lower"/> is the overlay's lowerdir option, relative to
    /// <paramref name="LowerLinks"/> (<see cref="OverlayLowerLinks"/>).</summary>
    internal sealed record Plan(string Merged, string LowerLinks, string Lower, string Upper, string Work, string Hostname,
        bool NewNetwork, bool SystemMounts, IReadOnlyList<BindMount> Binds, IReadOnlyList<KeyValuePair<string, string>> Secrets,
        AccessRecorder? Recorder = null);

    /// <summary>Moves the calling thread into new namespaces and builds the root there; disposing the result brings the
    /// thread back to where it was (its namespaces and working directory). Start the child in between and nothing
    /// else: a thread this thread makes meanwhile (the thread pool grows from the thread that queues work, the runtime
    /// makes some of its threads lazily) would be made in the sandbox's namespaces for good, and run kiln's work there.
    /// Throws <see cref="SandboxException"/> on failure, with the thread back.</summary>
    internal static Entered Enter(Plan plan)
    {
        _ = s_signalThread.Value;
        var entered = Entered.Save();
        try
        {
            if (unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | (plan.NewNetwork ? CLONE_NEWNET : 0)) != 0)
            {
                throw new SetupException($"cannot make the sandbox's namespaces: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
            }
            Mount("none", "/", null, MS_REC | MS_PRIVATE, null, "making the mounts private failed");
            Directory.SetCurrentDirectory(plan.LowerLinks);
            // nodev: device nodes an image's layers carry (dev/console, a block device in a foreign layer) stay files of
            // the image and never open a host device; /dev is a tmpfs of its own, with the host's harmless devices bound in.
            Mount("kiln-root", plan.Merged, "overlay", MS_NODEV, $"lowerdir={plan.Lower},upperdir={plan.Upper},workdir={plan.Work},{OverlayLowerLinks.FixedFeatures}",
                "overlay mount failed");
            // Before anything runs in the root (the mounts below are other filesystems, and stay unrecorded).
            plan.Recorder?.Mark(plan.Merged);
            if (plan.SystemMounts)
            {
                SystemMounts(plan.Merged);
            }
            if (plan.Secrets.Count > 0)
            {
                Secrets(plan.Merged, plan.Secrets, plan.Binds);
            }
            foreach (var bind in plan.Binds)
            {
                var target = plan.Merged + bind.ImagePath;
                Mount(bind.HostPath, target, null, MS_BIND, null, $"binding {bind.HostPath} to {bind.ImagePath} failed");
                if (bind.ReadOnly)
                {
                    // A remount replaces the mount's flags: keep the source's nosuid, nodev and noexec.
                    Mount(null, target, null, MS_REMOUNT | MS_BIND | MS_RDONLY | SourceFlags(bind.HostPath), null, $"making {bind.ImagePath} read-only failed");
                }
            }
            if (plan.NewNetwork)
            {
                LoopbackUp();
            }
            var name = Encoding.UTF8.GetBytes(plan.Hostname);
            fixed (byte* p = name)
            {
                _ = sethostname(p, (nuint)name.Length);
            }
            return entered;
        }
        catch (Exception ex)
        {
            entered.Dispose();
            if (ex is SetupException or IOException or UnauthorizedAccessException)
            {
                throw SandboxException.SetupFailed(ex.Message);
            }
            throw;
        }
    }

    /// <summary>The namespaces and working directory a thread had before <see cref="Enter"/>, as open descriptors;
    /// disposing returns the thread to them.</summary>
    internal sealed class Entered : IDisposable
    {
        // pid_for_children: the pid namespace this thread's next child is made in (its own stays kiln's).
        private static readonly (string Name, int Flag)[] Kinds =
            [("mnt", CLONE_NEWNS), ("uts", CLONE_NEWUTS), ("ipc", CLONE_NEWIPC), ("net", CLONE_NEWNET), ("pid_for_children", CLONE_NEWPID)];
        private readonly int[] _namespaces;
        private readonly int _cwd;
        private bool _returned;

        private Entered(int[] namespaces, int cwd) => (_namespaces, _cwd) = (namespaces, cwd);

        internal static Entered Save()
        {
            var fds = new int[Kinds.Length];
            for (int i = 0; i < Kinds.Length; i++)
            {
                fds[i] = Open($"/proc/thread-self/ns/{Kinds[i].Name}");
            }
            return new Entered(fds, Open("."));
        }

        private static int Open(string path)
        {
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            return fd >= 0 ? fd : throw SandboxException.SetupFailed($"cannot open {path}: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
        }

        /// <summary>Returns the thread. Failing that, kiln stops at once: this thread's work (and any thread it made) would
        /// go on in the sandbox's namespaces.</summary>
        public void Dispose()
        {
            if (_returned)
            {
                return;
            }
            _returned = true;
            for (int i = 0; i < Kinds.Length; i++)
            {
                // Entering its own mount namespace again needs a thread whose root and working directory no other thread
                // shares: it fails if a thread was made from this one since Enter.
                if (setns(_namespaces[i], Kinds[i].Flag) != 0)
                {
                    Environment.FailFast($"kiln: a thread cannot leave a sandbox's {Kinds[i].Name} namespace: "
                        + Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError()));
                }
                _ = close(_namespaces[i]);
            }
            if (fchdir(_cwd) != 0)
            {
                Environment.FailFast("kiln: a thread cannot return to its working directory after starting a sandbox: "
                    + Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError()));
            }
            _ = close(_cwd);
        }
    }

    /// <summary>Whether /proc can be mounted at <paramref name="merged"/>/proc (by the pid namespace's first process).</summary>
    internal static bool CanMountProc(string merged) => PlainDirectory(merged + "/proc");

    private static void SystemMounts(string m)
    {
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

    /// <summary>A tmpfs at /run/secrets holding each secret as a 0400 file (and the mount points of the binds that
    /// land below it), then made read-only. It lives in the sandbox's mount namespace only: the values never touch
    /// the host's disk, and go with the namespace.</summary>
    private static void Secrets(string merged, IReadOnlyList<KeyValuePair<string, string>> secrets, IReadOnlyList<BindMount> binds)
    {
        var dir = merged + SandboxSpec.SecretsDir;
        long size = 65536 + secrets.Sum(s => (long)Encoding.UTF8.GetByteCount(s.Value));
        Mount("kiln-secrets", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, $"mode=0755,size={size}", "mounting the secrets tmpfs failed");
        foreach (var (name, value) in secrets)
        {
            if (name.Contains('/') || name is "." or "..")
            {
                throw new SetupException($"secret name '{name}' is not a file name");
            }
            using var f = new FileStream(Path.Combine(dir, name), new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                UnixCreateMode = UnixFileMode.UserRead,
            });
            f.Write(Encoding.UTF8.GetBytes(value));
        }
        foreach (var bind in binds.Where(b => b.ImagePath.StartsWith(SandboxSpec.SecretsDir + "/", StringComparison.Ordinal)))
        {
            var point = merged + bind.ImagePath;
            if (Directory.Exists(bind.HostPath))
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
            throw new SetupException($"{what}: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
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

    private sealed class SetupException(string message) : Exception(message);

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

    [LibraryImport("libc", SetLastError = true)]
    private static partial int unshare(int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setns(int fd, int nstype);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fchdir(int fd);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    private const int O_RDONLY = 0, O_CLOEXEC = 0x80000;
}
