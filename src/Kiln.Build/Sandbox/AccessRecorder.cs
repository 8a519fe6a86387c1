using System.Runtime.InteropServices;

namespace Kiln.Build.Sandbox;

/// <summary>Records every file opened or executed in the sandboxes given it (<see cref="SandboxSpec.Recorder"/>), as
/// image paths: fanotify, marking each sandbox's overlay filesystem as soon as it is mounted, so nothing the command
/// does escapes it. Root only (fanotify's filesystem marks need CAP_SYS_ADMIN).</summary>
/// <remarks>A filesystem mark rather than a mount mark: systemd-nspawn binds the root elsewhere, a new mount of the same
/// overlay. The event's file is open in kiln; /proc/self/fd names it relative to the overlay's root, since that mount
/// lies in the sandbox's mount namespace, out of kiln's reach. Opens and executions only: stat(2) reports nothing.</remarks>
public sealed unsafe partial class AccessRecorder : IDisposable
{
    private const uint FAN_CLASS_NOTIF = 0, FAN_CLOEXEC = 1, FAN_NONBLOCK = 2, FAN_UNLIMITED_QUEUE = 0x10;
    private const uint FAN_MARK_ADD = 1, FAN_MARK_FILESYSTEM = 0x100;
    private const ulong FAN_OPEN = 0x20, FAN_OPEN_EXEC = 0x1000;
    private const int O_RDONLY = 0, O_LARGEFILE = 0x8000, O_CLOEXEC = 0x80000, AT_FDCWD = -100, EAGAIN = 11, POLLIN = 1;

    private readonly int _fd;
    private readonly HashSet<string> _paths = new(StringComparer.Ordinal);
    private readonly List<string> _roots = [];
    private readonly Thread _reader;
    private volatile bool _stopping;
    private Exception? _error;

    private AccessRecorder(int fd)
    {
        _fd = fd;
        // Made here, by a thread in kiln's own namespaces: a thread made by one that is setting up a sandbox would stay there.
        _reader = new Thread(ReadLoop) { IsBackground = true, Name = "kiln access recorder" };
        _reader.Start();
    }

    public static AccessRecorder Start()
    {
        int fd = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_UNLIMITED_QUEUE, O_RDONLY | O_LARGEFILE | O_CLOEXEC);
        return fd >= 0 ? new AccessRecorder(fd)
            : throw SandboxException.SetupFailed($"cannot record file accesses (fanotify): {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
    }

    /// <summary>Marks the overlay mounted at <paramref name="merged"/>; called in the sandbox's mount namespace, before
    /// its command starts.</summary>
    internal void Mark(string merged)
    {
        lock (_roots)
        {
            _roots.Add(merged);
        }
        if (fanotify_mark(_fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_OPEN | FAN_OPEN_EXEC, AT_FDCWD, merged) != 0)
        {
            throw SandboxException.SetupFailed($"cannot record file accesses of {merged} (fanotify_mark): {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
        }
    }

    /// <summary>Waits for the events queued so far and returns every image path recorded, sorted.</summary>
    public IReadOnlyList<string> Stop()
    {
        _stopping = true;
        _reader.Join();
        if (_error is not null)
        {
            throw SandboxException.SetupFailed($"recording file accesses failed: {_error.Message}");
        }
        lock (_paths)
        {
            return [.. _paths.Order(StringComparer.Ordinal)];
        }
    }

    private void ReadLoop()
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                bool stopping = _stopping; // read before draining: what was queued before Stop is all read
                var pfd = new PollFd { Fd = _fd, Events = POLLIN };
                _ = poll(&pfd, 1, 50);
                long n;
                fixed (byte* b = buffer)
                {
                    n = read(_fd, b, buffer.Length);
                }
                if (n < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno != EAGAIN)
                    {
                        throw new IOException(Marshal.GetPInvokeErrorMessage(errno));
                    }
                    if (stopping)
                    {
                        return;
                    }
                    continue;
                }
                Parse(buffer.AsSpan(0, (int)n));
            }
        }
        catch (Exception ex)
        {
            _error = ex;
        }
    }

    private void Parse(ReadOnlySpan<byte> events)
    {
        // struct fanotify_event_metadata: u32 event_len; u8 vers; u8 reserved; u16 metadata_len; u64 mask; s32 fd; s32 pid.
        while (events.Length >= 24)
        {
            int length = (int)MemoryMarshal.Read<uint>(events);
            int fd = MemoryMarshal.Read<int>(events[16..]);
            if (length < 24 || length > events.Length)
            {
                return;
            }
            if (fd >= 0)
            {
                try
                {
                    var target = new FileInfo($"/proc/self/fd/{fd}").LinkTarget;
                    if (target is not null && Image(target) is { } path)
                    {
                        lock (_paths)
                        {
                            _paths.Add(path);
                        }
                    }
                }
                finally
                {
                    _ = close(fd);
                }
            }
            events = events[length..];
        }
    }

    /// <summary>The image path of a recorded host path: relative to the overlay's root already, unless kiln could
    /// reach the mount (then the mount point is taken off).</summary>
    private string? Image(string target)
    {
        const string Deleted = " (deleted)";
        if (target.EndsWith(Deleted, StringComparison.Ordinal))
        {
            return null; // made and removed while the tests ran: not the image's
        }
        if (!target.StartsWith('/'))
        {
            return null;
        }
        lock (_roots)
        {
            foreach (var root in _roots)
            {
                if (target.StartsWith(root + "/", StringComparison.Ordinal))
                {
                    return target[root.Length..];
                }
            }
        }
        return target;
    }

    public void Dispose()
    {
        if (!_stopping)
        {
            _stopping = true;
            _reader.Join();
        }
        _ = close(_fd);
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fanotify_init(uint flags, uint eventFlags);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int fanotify_mark(int fd, uint flags, ulong mask, int dirfd, string path);

    [LibraryImport("libc", SetLastError = true)]
    private static partial long read(int fd, byte* buffer, long count);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int poll(PollFd* fds, ulong count, int timeout);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);
}
