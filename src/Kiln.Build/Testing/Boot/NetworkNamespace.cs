using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Kiln.Build.Testing.Boot;

/// <summary>Opens sockets inside another process's network namespace: a short-lived thread enters the
/// namespace with setns(2) and creates the socket there; a socket keeps its namespace for life, so it can
/// then be used from any thread. The rest of this process stays in the host's namespace.</summary>
internal static partial class NetworkNamespace
{
    private const int CLONE_NEWNET = 0x40000000;

    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static partial int SetNs(int fd, int nstype);

    public static Socket CreateSocket(int pid, AddressFamily family, SocketType type, ProtocolType protocol)
    {
        Socket? socket = null;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                using var ns = File.OpenHandle($"/proc/{pid}/ns/net", FileMode.Open, FileAccess.Read);
                if (SetNs((int)ns.DangerousGetHandle(), CLONE_NEWNET) != 0)
                {
                    throw new InstanceException($"cannot enter the network namespace of process {pid}: {Marshal.GetLastPInvokeErrorMessage()}");
                }
                socket = new Socket(family, type, protocol);
            }
            catch (Exception ex)
            {
                error = ex;
            }
        })
        {
            IsBackground = true,
            Name = "kiln-netns",
        };
        thread.Start();
        thread.Join();
        if (error is not null)
        {
            throw error is InstanceException ? error : new InstanceException($"cannot open a socket in the instance's network namespace: {error.Message}", inner: error);
        }
        return socket!;
    }

    /// <summary>Connects to a TCP port inside the namespace; the caller owns the socket.</summary>
    public static async Task<Socket> ConnectTcpAsync(int pid, IPAddress address, int port, CancellationToken ct)
    {
        var socket = CreateSocket(pid, address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(new IPEndPoint(address, port), ct).ConfigureAwait(false);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Whether a port is bound for listening in the namespace, from /proc/PID/net (which shows
    /// the namespace of that process): TCP sockets in LISTEN state, UDP sockets bound to the port.</summary>
    public static bool IsListening(int pid, string protocol, int port)
    {
        string[] tables = protocol == "udp" ? ["udp", "udp6"] : ["tcp", "tcp6"];
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
                if ((protocol == "udp" && cols[3] == "07") || (protocol != "udp" && cols[3] == "0A"))
                {
                    return true;
                }
            }
        }
        return false;
    }
}
