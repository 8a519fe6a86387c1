using System.Net;
using System.Net.Sockets;
using Kiln.Build.Testing.Boot;

namespace Kiln.Build.Tests.Testing.Boot;

/// <summary>The port check's question, asked of this process's own network namespace, where the test opens the
/// sockets itself; the kernel's sock_diag answer must match the /proc tables' answer.</summary>
public sealed class ListeningSocketsTests
{
    private static ListeningSockets Open() => NetworkNamespace.OpenListeningSockets(Environment.ProcessId);

    private static void AssertBoth(bool expected, string protocol, int port, ListeningSockets sockets)
    {
        Assert.True(sockets.AsksTheKernel, "sock_diag did not answer on this kernel");
        Assert.Equal(expected, sockets.IsListening(protocol, port));
        Assert.Equal(expected, ProcNetTables.IsListening(Environment.ProcessId, protocol == "udp", port));
    }

    [Fact]
    public void A_tcp_listener_is_seen_on_ipv4_and_ipv6_and_is_gone_once_stopped()
    {
        using var sockets = Open();
        var v4 = new TcpListener(IPAddress.Loopback, 0);
        v4.Start();
        int port4 = ((IPEndPoint)v4.LocalEndpoint).Port;
        var v6 = new TcpListener(IPAddress.IPv6Loopback, 0);
        v6.Start();
        int port6 = ((IPEndPoint)v6.LocalEndpoint).Port;
        try
        {
            AssertBoth(true, "tcp", port4, sockets);
            AssertBoth(true, "tcp", port6, sockets);
            AssertBoth(false, "udp", port4, sockets);
        }
        finally
        {
            v4.Stop();
            v6.Stop();
        }
        AssertBoth(false, "tcp", port4, sockets);
        AssertBoth(false, "tcp", port6, sockets);
    }

    [Fact]
    public async Task A_connected_socket_is_not_a_listener_and_a_bound_udp_socket_is()
    {
        using var sockets = Open();
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        using var udp = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
            using var accepted = await listener.AcceptTcpClientAsync();
            int clientPort = ((IPEndPoint)client.Client.LocalEndPoint!).Port;
            AssertBoth(false, "tcp", clientPort, sockets);
            AssertBoth(true, "udp", ((IPEndPoint)udp.Client.LocalEndPoint!).Port, sockets);
        }
        finally
        {
            listener.Stop();
        }
    }
}
