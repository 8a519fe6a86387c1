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

    public static Socket CreateSocket(int pid, AddressFamily family, SocketType type, ProtocolType protocol) =>
        InNamespace(pid, () => new Socket(family, type, protocol));

    /// <summary>Runs <paramref name="create"/> on a short-lived thread that has entered the network namespace of
    /// <paramref name="pid"/>: what it opens there stays in that namespace.</summary>
    private static T InNamespace<T>(int pid, Func<T> create)
    {
        T? result = default;
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
                result = create();
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
        return result!;
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

    /// <summary>A sock_diag netlink socket opened inside the namespace of <paramref name="pid"/>: it keeps that
    /// namespace for life, so every later question goes to the same one.</summary>
    public static ListeningSockets OpenListeningSockets(int pid) => new(pid, InNamespace(pid, ListeningSockets.OpenDiagSocket));
}
