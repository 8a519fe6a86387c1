using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Kiln.Build.Testing.Boot;

namespace Kiln.Build.Tests.Testing.Boot;

/// <summary>Sockets opened in another process's network namespace, from the calling thread, which stays in its own.</summary>
public sealed class NetworkNamespaceTests
{
    private static string ThreadNamespace() => File.ResolveLinkTarget("/proc/thread-self/ns/net", false)!.FullName;

    [Fact]
    public void A_socket_opened_in_another_namespace_lives_there_and_the_thread_stays_in_its_own()
    {
        // A namespace of its own, with nothing listening in it.
        using var other = Process.Start(new ProcessStartInfo("unshare", ["--net", "sleep", "30"]))!;
        try
        {
            var deadline = Stopwatch.StartNew();
            while (File.ResolveLinkTarget($"/proc/{other.Id}/ns/net", false)?.FullName == ThreadNamespace() || File.ReadAllText($"/proc/{other.Id}/comm").Trim() != "sleep")
            {
                Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(10), "unshare did not start");
                Thread.Sleep(10);
            }
            var before = ThreadNamespace();
            using var inside = NetworkNamespace.CreateSocket(other.Id, AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            Assert.Equal(before, ThreadNamespace());
            // Listening there: the host's loopback does not reach it.
            inside.Bind(new IPEndPoint(IPAddress.Any, 0));
            inside.Listen();
            int port = ((IPEndPoint)inside.LocalEndPoint!).Port;
            using var here = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            Assert.Equal(SocketError.ConnectionRefused, Assert.Throws<SocketException>(() => here.Connect(IPAddress.Loopback, port)).SocketErrorCode);
        }
        finally
        {
            other.Kill();
            other.WaitForExit();
        }
    }

    [Fact]
    public void A_process_that_is_gone_gives_an_instance_error_and_the_thread_stays_in_its_own_namespace()
    {
        var before = ThreadNamespace();
        var e = Assert.Throws<InstanceException>(() => NetworkNamespace.CreateSocket(int.MaxValue, AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
        Assert.Contains("network namespace", e.Message);
        Assert.Equal(before, ThreadNamespace());
    }
}
