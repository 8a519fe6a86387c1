using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Kiln.Build.Store;

/// <summary>The few libc calls .NET does not expose: real advisory locks, directory fsync, syncfs.</summary>
internal static partial class Native
{
    // Same values on x86_64 and aarch64 Linux.
    private const int ORdOnly = 0x0;
    private const int ORdWr = 0x2;
    private const int OCreat = 0x40;
    private const int OCloExec = 0x80000;

    internal const int LockSh = 1;
    internal const int LockEx = 2;
    internal const int LockNb = 4;
    internal const int LockUn = 8;

    internal const int EIntr = 4;
    internal const int EWouldBlock = 11;

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "flock", SetLastError = true)]
    private static partial int FLock(SafeFileHandle fd, int operation);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int FSync(SafeFileHandle fd);

    [LibraryImport("libc", EntryPoint = "syncfs", SetLastError = true)]
    private static partial int SyncFs(SafeFileHandle fd);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    /// <summary>Opens (creating) a file for locking, without .NET's own FileShare flock on it.</summary>
    internal static SafeFileHandle OpenLockFile(string path)
    {
        int fd = Open(path, ORdWr | OCreat | OCloExec, 0x1A4 /* 0644 */);
        if (fd < 0)
        {
            throw new IOException($"cannot open lock file '{path}': {Marshal.GetLastPInvokeErrorMessage()}");
        }
        return new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>flock; returns false when non-blocking and held elsewhere.</summary>
    internal static bool TryFLock(SafeFileHandle fd, int operation)
    {
        while (true)
        {
            if (FLock(fd, operation) == 0)
            {
                return true;
            }
            int errno = Marshal.GetLastPInvokeError();
            if (errno == EIntr)
            {
                continue;
            }
            if (errno == EWouldBlock)
            {
                return false;
            }
            throw new IOException($"flock failed: {Marshal.GetLastPInvokeErrorMessage()}");
        }
    }

    internal static void Unlock(SafeFileHandle fd) => FLock(fd, LockUn);

    /// <summary>fsyncs a directory so a rename into it survives a crash.</summary>
    internal static void FsyncDirectory(string dir)
    {
        using var h = OpenReadOnly(dir);
        if (FSync(h) != 0)
        {
            throw new IOException($"fsync of '{dir}' failed: {Marshal.GetLastPInvokeErrorMessage()}");
        }
    }

    /// <summary>fsyncs a regular file or a directory (never a device node or fifo: opening those has side effects).</summary>
    internal static void FsyncPath(string path)
    {
        using var h = OpenReadOnly(path);
        if (FSync(h) != 0)
        {
            throw new IOException($"fsync of '{path}' failed: {Marshal.GetLastPInvokeErrorMessage()}");
        }
    }

    /// <summary>Flushes the whole filesystem holding <paramref name="path"/> (a snapshot tree before its commit rename).</summary>
    internal static void SyncFilesystem(string path)
    {
        using var h = OpenReadOnly(path);
        if (SyncFs(h) != 0)
        {
            throw new IOException($"syncfs of '{path}' failed: {Marshal.GetLastPInvokeErrorMessage()}");
        }
    }

    /// <summary>True unless the kernel says no such process (EPERM still means alive).</summary>
    internal static bool ProcessExists(int pid)
    {
        if (pid <= 0)
        {
            return false;
        }
        if (Kill(pid, 0) == 0)
        {
            return true;
        }
        return Marshal.GetLastPInvokeError() != 3 /* ESRCH */;
    }

    private static SafeFileHandle OpenReadOnly(string path)
    {
        int fd = Open(path, ORdOnly | OCloExec, 0);
        if (fd < 0)
        {
            throw new IOException($"cannot open '{path}': {Marshal.GetLastPInvokeErrorMessage()}");
        }
        return new SafeFileHandle(fd, ownsHandle: true);
    }
}
