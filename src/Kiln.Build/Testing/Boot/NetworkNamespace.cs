using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Kiln.Build.Testing.Boot;

/// <summary>Opens sockets inside another process's network namespace: the calling thread enters the namespace with
/// setns(2), creates the socket there and goes back; a socket keeps its namespace for life, so it can then be used
/// from any thread. The process, and the thread after the call, stay in the host's namespace.</summary>
internal static partial class NetworkNamespace
{
    private const int CLONE_NEWNET = 0x40000000;

    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static partial int SetNs(int fd, int nstype);

    public static Socket CreateSocket(int pid, AddressFamily family, SocketType type, ProtocolType protocol) =>
        InNamespace(pid, () => new Socket(family, type, protocol));

    /// <summary>Runs <paramref name="create"/> (which must not block or await) on this thread while it is in the
    /// network namespace of <paramref name="pid"/>: what it opens there stays in that namespace. Entering and leaving
    /// take two system calls; a thread of its own for this cost about as much as an HTTP check, under load more.</summary>
    private static T InNamespace<T>(int pid, Func<T> create)
    {
        using var own = File.OpenHandle("/proc/thread-self/ns/net", FileMode.Open, FileAccess.Read);
        try
        {
            using var ns = File.OpenHandle($"/proc/{pid}/ns/net", FileMode.Open, FileAccess.Read);
            if (SetNs((int)ns.DangerousGetHandle(), CLONE_NEWNET) != 0)
            {
                throw new InstanceException($"cannot enter the network namespace of process {pid}: {Marshal.GetLastPInvokeErrorMessage()}");
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new InstanceException($"cannot open a socket in the instance's network namespace: {ex.Message}", inner: ex);
        }
        try
        {
            return create();
        }
        catch (Exception ex) when (ex is not InstanceException)
        {
            throw new InstanceException($"cannot open a socket in the instance's network namespace: {ex.Message}", inner: ex);
        }
        finally
        {
            // A thread left in the instance's namespace would open later sockets there: nothing may run on after that.
            if (SetNs((int)own.DangerousGetHandle(), CLONE_NEWNET) != 0)
            {
                Environment.FailFast($"kiln: cannot return a thread to its network namespace: {Marshal.GetLastPInvokeErrorMessage()}");
            }
        }
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
