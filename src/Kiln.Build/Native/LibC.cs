using System.Runtime.InteropServices;
using System.Text;

namespace Kiln.Build.Native;

/// <summary>What <c>lstat</c> reports about one path (never following a final symlink).</summary>
public readonly record struct FileStatus(
    uint Mode, uint Uid, uint Gid, long Size, long MTimeSeconds, long MTimeNanoseconds,
    ulong Inode, ulong Device, ulong LinkCount, uint RdevMajor, uint RdevMinor, long CTimeSeconds, long CTimeNanoseconds, long Blocks = 0)
{
    /// <summary>A regular file with fewer bytes on disk than its size: it has holes (or is compressed on disk).</summary>
    public bool MayHaveHoles => IsRegularFile && Blocks * 512 < Size;

    public uint FileType => Mode & LibC.S_IFMT;
    /// <summary>Permission bits including setuid, setgid and sticky.</summary>
    public uint Permissions => Mode & 0xFFF;
    public bool IsDirectory => FileType == LibC.S_IFDIR;
    public bool IsRegularFile => FileType == LibC.S_IFREG;
    public bool IsSymlink => FileType == LibC.S_IFLNK;
    public bool IsCharDevice => FileType == LibC.S_IFCHR;
    public bool IsBlockDevice => FileType == LibC.S_IFBLK;
    public bool IsFifo => FileType == LibC.S_IFIFO;
    public bool IsSocket => FileType == LibC.S_IFSOCK;
    /// <summary>An overlayfs whiteout: a character device 0:0.</summary>
    public bool IsWhiteout => IsCharDevice && RdevMajor == 0 && RdevMinor == 0;
}

/// <summary>The few libc calls .NET does not offer, for x86_64 glibc (2.33+ exports stat and mknod as symbols).</summary>
public static unsafe partial class LibC
{
    public const uint S_IFMT = 0xF000, S_IFSOCK = 0xC000, S_IFLNK = 0xA000, S_IFREG = 0x8000,
        S_IFBLK = 0x6000, S_IFDIR = 0x4000, S_IFCHR = 0x2000, S_IFIFO = 0x1000;

    private const int AT_FDCWD = -100;
    private const int AT_SYMLINK_NOFOLLOW = 0x100;
    private const int ENOENT = 2, ENODATA = 61, ERANGE = 34;

    // struct stat on x86_64 (144 bytes).
    [StructLayout(LayoutKind.Sequential)]
    private struct StatBuf
    {
        public ulong st_dev, st_ino, st_nlink;
        public uint st_mode, st_uid, st_gid;
        public int pad0;
        public ulong st_rdev;
        public long st_size, st_blksize, st_blocks;
        public long st_atime, st_atime_nsec, st_mtime, st_mtime_nsec, st_ctime, st_ctime_nsec;
        public long r0, r1, r2;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec { public long tv_sec, tv_nsec; }

    [LibraryImport("libc", EntryPoint = "lstat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int sys_lstat(string path, StatBuf* buf);

    [LibraryImport("libc", EntryPoint = "llistxattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint sys_llistxattr(string path, byte* list, nuint size);

    [LibraryImport("libc", EntryPoint = "lgetxattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint sys_lgetxattr(string path, string name, byte* value, nuint size);

    [LibraryImport("libc", EntryPoint = "lsetxattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int sys_lsetxattr(string path, string name, byte* value, nuint size, int flags);

    [LibraryImport("libc", EntryPoint = "mknod", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int sys_mknod(string path, uint mode, ulong dev);

    [LibraryImport("libc", EntryPoint = "lchown", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int sys_lchown(string path, uint uid, uint gid);

    [LibraryImport("libc", EntryPoint = "chmod", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int sys_chmod(string path, uint mode);

    [LibraryImport("libc", EntryPoint = "link", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int sys_link(string oldPath, string newPath);

    [LibraryImport("libc", EntryPoint = "utimensat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int sys_utimensat(int dirfd, string path, TimeSpec* times, int flags);

    public static FileStatus Lstat(string path) =>
        TryLstat(path) ?? throw Error("lstat", path, ENOENT);

    /// <summary>The status of <paramref name="path"/>, or null when it does not exist.</summary>
    public static FileStatus? TryLstat(string path)
    {
        StatBuf buf;
        if (sys_lstat(path, &buf) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno == ENOENT || errno == 20 /* ENOTDIR */)
            {
                return null;
            }
            throw Error("lstat", path, errno);
        }
        ulong rdev = buf.st_rdev;
        uint major = (uint)(((rdev >> 8) & 0xfff) | ((rdev >> 32) & ~0xfffUL));
        uint minor = (uint)((rdev & 0xff) | ((rdev >> 12) & ~0xffUL));
        return new FileStatus(buf.st_mode, buf.st_uid, buf.st_gid, buf.st_size, buf.st_mtime, buf.st_mtime_nsec,
            buf.st_ino, buf.st_dev, buf.st_nlink, major, minor, buf.st_ctime, buf.st_ctime_nsec, buf.st_blocks);
    }

    private const int SEEK_DATA = 3, SEEK_HOLE = 4, ENXIO = 6;

    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    private static partial long sys_lseek(Microsoft.Win32.SafeHandles.SafeFileHandle fd, long offset, int whence);

    /// <summary>The data segments of an open file, as (offset, length), from lseek's SEEK_DATA and SEEK_HOLE; null
    /// when the filesystem cannot tell (then the whole file is data).</summary>
    public static List<(long Offset, long Length)>? DataSegments(Microsoft.Win32.SafeHandles.SafeFileHandle file, long size)
    {
        var segments = new List<(long, long)>();
        long at = 0;
        while (at < size)
        {
            long data = sys_lseek(file, at, SEEK_DATA);
            if (data < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                return errno == ENXIO ? segments : null; // ENXIO: only a hole from here to the end
            }
            long hole = sys_lseek(file, data, SEEK_HOLE);
            if (hole < 0)
            {
                return null;
            }
            hole = Math.Min(hole, size);
            if (hole > data)
            {
                segments.Add((data, hole - data));
            }
            at = hole;
        }
        return segments;
    }

    /// <summary>Extended attribute names of <paramref name="path"/> (not following a symlink), sorted ordinally.</summary>
    public static List<string> ListXattrs(string path)
    {
        var names = new List<string>();
        byte[] buffer = new byte[1024];
        while (true)
        {
            nint n;
            fixed (byte* p = buffer)
            {
                n = sys_llistxattr(path, p, (nuint)buffer.Length);
            }
            if (n < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == ERANGE)
                {
                    buffer = new byte[buffer.Length * 4];
                    continue;
                }
                if (errno == 95 /* EOPNOTSUPP */)
                {
                    return names;
                }
                throw Error("llistxattr", path, errno);
            }
            int start = 0;
            for (int i = 0; i < n; i++)
            {
                if (buffer[i] == 0)
                {
                    if (i > start)
                    {
                        names.Add(Encoding.UTF8.GetString(buffer, start, i - start));
                    }
                    start = i + 1;
                }
            }
            names.Sort(StringComparer.Ordinal);
            return names;
        }
    }

    /// <summary>The value of an extended attribute, or null when it is not set.</summary>
    public static byte[]? GetXattr(string path, string name)
    {
        byte[] buffer = new byte[256];
        while (true)
        {
            nint n;
            fixed (byte* p = buffer)
            {
                n = sys_lgetxattr(path, name, p, (nuint)buffer.Length);
            }
            if (n >= 0)
            {
                return buffer.AsSpan(0, (int)n).ToArray();
            }
            int errno = Marshal.GetLastPInvokeError();
            if (errno == ERANGE && buffer.Length < (1 << 24))
            {
                buffer = new byte[buffer.Length * 8];
                continue;
            }
            if (errno == ENODATA)
            {
                return null;
            }
            throw Error($"lgetxattr {name}", path, errno);
        }
    }

    public static void SetXattr(string path, string name, ReadOnlySpan<byte> value)
    {
        fixed (byte* p = value)
        {
            if (sys_lsetxattr(path, name, p, (nuint)value.Length, 0) != 0)
            {
                throw Error($"lsetxattr {name}", path, Marshal.GetLastPInvokeError());
            }
        }
    }

    /// <summary>Creates a special file; <paramref name="mode"/> includes the type bits (S_IFCHR, S_IFBLK, S_IFIFO).</summary>
    public static void Mknod(string path, uint mode, uint major = 0, uint minor = 0)
    {
        ulong dev = ((ulong)(major & 0xfff) << 8) | ((ulong)(major & ~0xfffu) << 32)
            | (minor & 0xff) | ((ulong)(minor & ~0xffu) << 12);
        if (sys_mknod(path, mode, dev) != 0)
        {
            throw Error("mknod", path, Marshal.GetLastPInvokeError());
        }
    }

    /// <summary>Creates an overlayfs whiteout (character device 0:0, mode 000).</summary>
    public static void MknodWhiteout(string path) => Mknod(path, S_IFCHR, 0, 0);

    public static void Lchown(string path, uint uid, uint gid)
    {
        if (sys_lchown(path, uid, gid) != 0)
        {
            throw Error("lchown", path, Marshal.GetLastPInvokeError());
        }
    }

    /// <summary>Sets permission bits (including setuid/setgid/sticky); follows symlinks, so never call it on one.</summary>
    public static void Chmod(string path, uint mode)
    {
        if (sys_chmod(path, mode & 0xFFF) != 0)
        {
            throw Error("chmod", path, Marshal.GetLastPInvokeError());
        }
    }

    public static void Link(string existingPath, string newPath)
    {
        if (sys_link(existingPath, newPath) != 0)
        {
            throw Error("link", newPath, Marshal.GetLastPInvokeError());
        }
    }

    /// <summary>Sets atime and mtime to the same instant without following a final symlink.</summary>
    public static void SetTimesNoFollow(string path, long seconds, long nanoseconds = 0)
    {
        TimeSpec* times = stackalloc TimeSpec[2];
        times[0] = new TimeSpec { tv_sec = seconds, tv_nsec = nanoseconds };
        times[1] = times[0];
        if (sys_utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW) != 0)
        {
            throw Error("utimensat", path, Marshal.GetLastPInvokeError());
        }
    }

    private static IOException Error(string call, string path, int errno) =>
        new($"{call} '{path}': {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})", errno);
}
