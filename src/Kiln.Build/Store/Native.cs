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

    [LibraryImport("libc", EntryPoint = "sync_file_range", SetLastError = true)]
    private static partial int SyncFileRange(SafeFileHandle fd, long offset, long nbytes, uint flags);

    private const uint SyncFileRangeWrite = 2;

    /// <summary>Starts writeback of a file's dirty pages from <paramref name="offset"/> to its end, without waiting for it:
    /// the fsync that follows a long write then has little left to do. Best effort: a failure is the fsync's to report.</summary>
    internal static void StartWriteback(SafeFileHandle fd, long offset) => _ = SyncFileRange(fd, offset, 0, SyncFileRangeWrite);

    [LibraryImport("libc", EntryPoint = "syncfs", SetLastError = true)]
    private static partial int SyncFs(SafeFileHandle fd);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    [LibraryImport("libc", EntryPoint = "mount", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Mount(string source, string target, string fstype, ulong flags, string data);

    [LibraryImport("libc", EntryPoint = "umount2", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Umount2(string target, int flags);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static unsafe partial int IoctlInt(SafeFileHandle fd, ulong request, int* value);

    [LibraryImport("libc", EntryPoint = "statfs", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int StatFs(string path, long* buf);

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

    /// <summary>Mounts a tmpfs of at most <paramref name="bytes"/> on <paramref name="target"/>, readable by root only;
    /// null on success, else why not.</summary>
    internal static string? TryMountTmpfs(string target, long bytes)
    {
        if (Mount("kiln-scratch", target, "tmpfs", 0, string.Create(System.Globalization.CultureInfo.InvariantCulture, $"size={bytes},mode=0700")) == 0)
        {
            return null;
        }
        return Marshal.GetLastPInvokeErrorMessage();
    }

    /// <summary>Detaches whatever is mounted on <paramref name="path"/> (MNT_DETACH: users keep it until they are
    /// gone); false when nothing was.</summary>
    internal static bool Detach(string path)
    {
        if (Umount2(path, 2 /* MNT_DETACH */) == 0)
        {
            return true;
        }
        int errno = Marshal.GetLastPInvokeError();
        if (errno is 22 /* EINVAL: not a mount point */ or 2 /* ENOENT */)
        {
            return false;
        }
        throw new IOException($"cannot unmount '{path}': {Marshal.GetPInvokeErrorMessage(errno)}");
    }

    /// <summary>Sets the "top of directory hierarchies" attribute (<c>chattr +T</c>, FS_TOPDIR_FL) on a directory:
    /// ext4's Orlov allocator then spreads the dirs made in it over block groups with free space. Filesystems
    /// without the attribute are left alone; false when it could not be set.</summary>
    internal static unsafe bool TryMarkTopDir(string dir)
    {
        const ulong GetFlags = 0x80086601, SetFlags = 0x40086602;
        const int TopDir = 0x00020000;
        try
        {
            using var h = OpenReadOnly(dir);
            int flags = 0;
            if (IoctlInt(h, GetFlags, &flags) != 0)
            {
                return false;
            }
            if ((flags & TopDir) != 0)
            {
                return true;
            }
            flags |= TopDir;
            return IoctlInt(h, SetFlags, &flags) == 0;
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>Bytes free to unprivileged writers and the total size of the filesystem holding <paramref name="path"/>.</summary>
    internal static unsafe (long Free, long Total) FreeSpace(string path)
    {
        // struct statfs on x86_64 and aarch64: f_type, f_bsize, f_blocks, f_bfree, f_bavail, ... (all 8 bytes).
        long* buf = stackalloc long[15];
        if (StatFs(path, buf) != 0)
        {
            throw new IOException($"statfs of '{path}' failed: {Marshal.GetLastPInvokeErrorMessage()}");
        }
        return (buf[4] * buf[1], buf[2] * buf[1]);
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
