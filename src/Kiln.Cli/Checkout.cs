using System.Runtime.InteropServices;

namespace Kiln.Cli;

/// <summary>The checks of <c>./kiln</c>, made by the kiln it runs. The wrapper is a sh script that only execs
/// <c>out/kiln</c> with <c>KILN_CHECKOUT</c> set to the checkout: a bash wrapper making these checks itself cost more
/// than kiln's own start. They are the rules of scripts/current.sh, which scripts/build-tool.sh and
/// scripts/refresh.sh apply (WrapperTests holds both to the same cases): the set-up stamp holds packaging/control's
/// list, and no source file or dir changed since the stamps of the last build. When one is not current, kiln hands
/// over to scripts/refresh.sh, which installs, builds, and runs the new binary.</summary>
public static unsafe partial class Checkout
{
    private const string Variable = "KILN_CHECKOUT";

    /// <summary>Returns when this kiln may run the command; otherwise replaces the process with scripts/refresh.sh
    /// (or ends it with exit 1 when that cannot start).</summary>
    public static void EnsureCurrent(string[] args)
    {
        var root = CliEnvironment.Get(Variable);
        if (string.IsNullOrEmpty(root))
        {
            return;
        }
        // Nothing kiln starts (steps, tests, a second kiln) is to take itself for ./kiln's.
        Environment.SetEnvironmentVariable(Variable, null);
        if (IsCurrent(root))
        {
            return;
        }
        var script = Path.Combine(root, "scripts", "refresh.sh");
        Exec("/bin/bash", ["bash", script, .. args]);
        Console.Error.WriteLine($"kiln: cannot run {script}: {Marshal.GetLastPInvokeErrorMessage()}");
        Environment.Exit(ExitCodes.Failed);
    }

    /// <summary>Whether the set-up of the checkout at <paramref name="root"/> is done and out/kiln is current.</summary>
    public static bool IsCurrent(string root) => SetupIsCurrent(root, "build") && ToolIsCurrent(root);

    /// <summary>scripts/setup.sh MODE has installed the list packaging/control holds now.</summary>
    public static bool SetupIsCurrent(string root, string mode)
    {
        try
        {
            var want = File.ReadAllText(Path.Combine(root, "packaging", "control"));
            return want.Length > 0 && want == File.ReadAllText(Path.Combine(root, "out", ".setup-" + mode));
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>out/kiln and kiln-sandbox-exec exist, and every source listed in out/.sources is older than its stamp
    /// (files than out/.sources-time, dirs than out/.sources-dirs), to the nanosecond as bash's -nt compares. A source
    /// that is gone counts as a change.</summary>
    public static bool ToolIsCurrent(string root)
    {
        try
        {
            if (!File.Exists(Path.Combine(root, "out", "kiln")) || !File.Exists(Path.Combine(root, "out", "kiln-sandbox-exec"))
                || !Directory.Exists(Path.Combine(root, "src")) || !File.Exists(Path.Combine(root, "Directory.Build.props"))
                || ModifiedAt(Path.Combine(root, "out", ".sources-time")) is not { } filesStamp
                || ModifiedAt(Path.Combine(root, "out", ".sources-dirs")) is not { } dirsStamp)
            {
                return false;
            }
            var lines = File.ReadAllLines(Path.Combine(root, "out", ".sources"));
            if (lines.Length == 0)
            {
                return false;
            }
            foreach (var line in lines)
            {
                if (line.Length < 3 || line[1] != ' ' || line[0] is not ('d' or 'f')
                    || ModifiedAt(Path.Combine(root, line[2..])) is not { } source
                    || (line[0] == 'd' ? dirsStamp : filesStamp).CompareTo(source) <= 0)
                {
                    return false;
                }
            }
            return true;
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>The modification time of a path (following a symlink, as test -nt does), or null when it is not
    /// there. One lstat for all but symlinks: these checks stat some 250 paths on every call of ./kiln.</summary>
    private static (long Seconds, long Nanoseconds)? ModifiedAt(string path)
    {
        if (Kiln.Build.Native.LibC.TryLstat(path) is not { } status)
        {
            return null;
        }
        if (!status.IsSymlink)
        {
            return (status.MTimeSeconds, status.MTimeNanoseconds);
        }
        var target = new FileInfo(path);
        if (target.LinkTarget is not null && target.ResolveLinkTarget(returnFinalTarget: true) is { Exists: true } final)
        {
            var ticks = final.LastWriteTimeUtc.Ticks - DateTime.UnixEpoch.Ticks;
            return (ticks / TimeSpan.TicksPerSecond, ticks % TimeSpan.TicksPerSecond * 100);
        }
        return null;
    }

    private static void Exec(string file, string[] argv)
    {
        var pointers = new nint[argv.Length + 1];
        for (int i = 0; i < argv.Length; i++)
        {
            pointers[i] = Marshal.StringToCoTaskMemUTF8(argv[i]);
        }
        var path = Marshal.StringToCoTaskMemUTF8(file);
        fixed (nint* p = pointers)
        {
            _ = execv((byte*)path, p);
        }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int execv(byte* path, nint* argv);
}
