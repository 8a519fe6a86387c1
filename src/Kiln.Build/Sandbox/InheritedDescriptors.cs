using System.Runtime.InteropServices;

namespace Kiln.Build.Sandbox;

/// <summary>Marks every descriptor above 2 close-on-exec before a child starts, so nothing this process
/// inherited (a CI runner's pipes, a shell's saved descriptors) crosses into a sandbox. The runtime's own
/// descriptors are already opened with O_CLOEXEC.</summary>
internal static partial class InheritedDescriptors
{
    private const int F_GETFD = 1;
    private const int F_SETFD = 2;
    private const int FD_CLOEXEC = 1;

    private const uint CLOSE_RANGE_CLOEXEC = 1 << 2;

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(int fd, int cmd, int arg);

    [LibraryImport("libc", EntryPoint = "close_range", SetLastError = true)]
    private static partial int CloseRange(uint first, uint last, uint flags);

    public static void CloseOnExec()
    {
        // One call where the kernel has it (Linux 5.11); else each open descriptor in turn.
        if (CloseRange(3, uint.MaxValue, CLOSE_RANGE_CLOEXEC) == 0)
        {
            return;
        }
        string[] entries;
        try
        {
            entries = Directory.GetFileSystemEntries("/proc/self/fd");
        }
        catch (IOException)
        {
            return;
        }
        foreach (var entry in entries)
        {
            if (!int.TryParse(Path.GetFileName(entry), out int fd) || fd <= 2)
            {
                continue;
            }
            int flags = Fcntl(fd, F_GETFD, 0);
            if (flags >= 0 && (flags & FD_CLOEXEC) == 0)
            {
                Fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
            }
        }
    }
}
