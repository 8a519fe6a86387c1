using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Kiln.Build.Testing.Boot;

/// <summary>Which ports listen in one network namespace, asked of the kernel through a sock_diag netlink socket
/// opened inside it (<see cref="NetworkNamespace.OpenListeningSockets"/>).</summary>
/// <remarks>Reading /proc/PID/net/tcp instead makes the kernel walk its whole established-connection hash table,
/// every bucket of every namespace, for each read: polling for a port that way every millisecond took a fifth of
/// all the CPU of an application-change build on the reference machine (2 cores, 24 GiB). A sock_diag dump of
/// listening sockets walks the listening table only. Where the kernel has no sock_diag for a protocol (a module not
/// there), the /proc tables are read as before.</remarks>
public sealed unsafe partial class ListeningSockets : IDisposable
{
    private const int AF_NETLINK = 16, SOCK_RAW = 3, SOCK_CLOEXEC = 0x80000, NETLINK_SOCK_DIAG = 4;
    private const int AF_INET = 2, AF_INET6 = 10, IPPROTO_TCP = 6, IPPROTO_UDP = 17;
    private const ushort SOCK_DIAG_BY_FAMILY = 20, NLMSG_ERROR = 2, NLMSG_DONE = 3;
    private const ushort NLM_F_REQUEST = 1, NLM_F_DUMP = 0x300;
    private const int TCP_LISTEN = 10, TCP_CLOSE = 7;
    private const int HeaderSize = 16, RequestSize = HeaderSize + 56;

    private readonly SafeDiagHandle? _socket;
    private readonly int _pid;
    private readonly Lock _gate = new();
    private readonly byte[] _buffer = new byte[64 * 1024];
    private uint _sequence;

    internal ListeningSockets(int pid, SafeDiagHandle? socket)
    {
        _pid = pid;
        _socket = socket;
    }

    /// <summary>Whether the kernel's sock_diag answers (else the /proc tables do).</summary>
    internal bool AsksTheKernel => _socket is not null;

    /// <summary>Whether a TCP socket listens on <paramref name="port"/> (IPv4 or IPv6), or, for udp, a socket is bound
    /// to it.</summary>
    public bool IsListening(string protocol, int port)
    {
        bool udp = protocol == "udp";
        if (_socket is not null)
        {
            lock (_gate)
            {
                bool? ipv4 = Query(AF_INET, udp, port);
                if (ipv4 == true)
                {
                    return true;
                }
                bool? ipv6 = Query(AF_INET6, udp, port);
                if (ipv4 is not null && ipv6 is not null)
                {
                    return ipv6.Value;
                }
            }
        }
        return ProcNetTables.IsListening(_pid, udp, port);
    }

    /// <summary>One dump of the namespace's listening (tcp) or unconnected bound (udp) sockets of a family; null when
    /// the kernel cannot answer it.</summary>
    private bool? Query(int family, bool udp, int port)
    {
        uint sequence = ++_sequence;
        Span<byte> request = stackalloc byte[RequestSize];
        request.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(request, RequestSize);
        BinaryPrimitives.WriteUInt16LittleEndian(request[4..], SOCK_DIAG_BY_FAMILY);
        BinaryPrimitives.WriteUInt16LittleEndian(request[6..], NLM_F_REQUEST | NLM_F_DUMP);
        BinaryPrimitives.WriteUInt32LittleEndian(request[8..], sequence);
        // struct inet_diag_req_v2: family, protocol, extensions, pad, states; the socket id stays zero (all sockets).
        request[HeaderSize] = (byte)family;
        request[HeaderSize + 1] = (byte)(udp ? IPPROTO_UDP : IPPROTO_TCP);
        BinaryPrimitives.WriteUInt32LittleEndian(request[(HeaderSize + 4)..], 1u << (udp ? TCP_CLOSE : TCP_LISTEN));
        fixed (byte* p = request)
        {
            if (Send(_socket!, p, RequestSize, 0) != RequestSize)
            {
                return null;
            }
        }
        bool found = false;
        while (true)
        {
            nint n;
            fixed (byte* p = _buffer)
            {
                n = Recv(_socket!, p, _buffer.Length, 0);
            }
            if (n <= 0)
            {
                return null;
            }
            var data = _buffer.AsSpan(0, (int)n);
            while (data.Length >= HeaderSize)
            {
                var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(data);
                var type = BinaryPrimitives.ReadUInt16LittleEndian(data[4..]);
                var seq = BinaryPrimitives.ReadUInt32LittleEndian(data[8..]);
                if (length < HeaderSize || length > data.Length)
                {
                    return null;
                }
                if (seq == sequence)
                {
                    if (type == NLMSG_DONE)
                    {
                        return found;
                    }
                    if (type == NLMSG_ERROR)
                    {
                        return null;
                    }
                    // struct inet_diag_msg: family, state, timer, retrans, then the socket id, whose source port
                    // comes first, in network byte order.
                    if (type == SOCK_DIAG_BY_FAMILY && length >= HeaderSize + 6
                        && BinaryPrimitives.ReadUInt16BigEndian(data[(HeaderSize + 4)..]) == port)
                    {
                        found = true;
                    }
                }
                var aligned = (length + 3) & ~3;
                data = data[Math.Min(aligned, data.Length)..];
            }
        }
    }

    /// <summary>Opens the netlink socket; called on a thread inside the namespace. Null when this kernel has no
    /// sock_diag (the /proc tables answer then).</summary>
    internal static SafeDiagHandle? OpenDiagSocket()
    {
        var handle = new SafeDiagHandle(Socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
        if (handle.IsInvalid)
        {
            handle.Dispose();
            return null;
        }
        return handle;
    }

    public void Dispose() => _socket?.Dispose();

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    private static partial int Socket(int domain, int type, int protocol);

    [LibraryImport("libc", EntryPoint = "send", SetLastError = true)]
    private static partial nint Send(SafeDiagHandle fd, byte* buffer, nint length, int flags);

    [LibraryImport("libc", EntryPoint = "recv", SetLastError = true)]
    private static partial nint Recv(SafeDiagHandle fd, byte* buffer, nint length, int flags);

    internal sealed partial class SafeDiagHandle : Microsoft.Win32.SafeHandles.SafeHandleMinusOneIsInvalid
    {
        public SafeDiagHandle()
            : base(ownsHandle: true)
        {
        }

        public SafeDiagHandle(int fd)
            : base(ownsHandle: true) => SetHandle(fd);

        protected override bool ReleaseHandle() => Close((int)handle) == 0;

        [LibraryImport("libc", EntryPoint = "close")]
        private static partial int Close(int fd);
    }
}

/// <summary>The fallback: the namespace's /proc/PID/net tables (TCP sockets in LISTEN state, UDP sockets bound
/// to the port).</summary>
internal static class ProcNetTables
{
    public static bool IsListening(int pid, bool udp, int port)
    {
        string[] tables = udp ? ["udp", "udp6"] : ["tcp", "tcp6"];
        var hexPort = ":" + port.ToString("X4", System.Globalization.CultureInfo.InvariantCulture);
        foreach (var table in tables)
        {
            string[] lines;
            try
            {
                lines = File.ReadAllLines($"/proc/{pid}/net/{table}");
            }
            catch (IOException)
            {
                continue;
            }
            foreach (var line in lines.Skip(1))
            {
                var cols = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (cols.Length < 4 || !cols[1].EndsWith(hexPort, StringComparison.Ordinal))
                {
                    continue;
                }
                // TCP state 0A is LISTEN; a bound UDP socket shows 07 (CLOSE).
                if ((udp && cols[3] == "07") || (!udp && cols[3] == "0A"))
                {
                    return true;
                }
            }
        }
        return false;
    }
}
