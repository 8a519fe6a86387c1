using System.Net;
using System.Net.Sockets;
using System.Text;
using Kiln.Build.Testing.Boot;

namespace Kiln.Build.Services;

/// <summary>Serves one file over HTTP/1.0 (GET and HEAD of one path, anything else 404) on a listening socket made by
/// the caller, in whatever network namespace that socket belongs to: a pair test makes it inside the instance's, so
/// the instance fetches its package from Kiln at 127.0.0.1 without a route to the host.</summary>
internal sealed class PackageServer : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly string _path;
    private readonly byte[] _content;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private int _served;

    private PackageServer(Socket listener, string path, byte[] content)
    {
        _listener = listener;
        _path = path;
        _content = content;
        _loop = Task.Run(AcceptLoopAsync);
    }

    /// <summary>How many times the file was sent whole.</summary>
    public int Served => Volatile.Read(ref _served);

    /// <summary>The port it listens on.</summary>
    public int Port => ((IPEndPoint)_listener.LocalEndPoint!).Port;

    /// <summary>Listens on 127.0.0.1 on a port the kernel picks: for a VM, whose user network shows the host's
    /// loopback to the guest (as 10.0.2.2).</summary>
    public static PackageServer StartOnLoopback(string path, byte[] content)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            socket.Listen(16);
            return new PackageServer(socket, path, content);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Listens on 0.0.0.0:<paramref name="port"/> inside the network namespace of <paramref name="pid"/>:
    /// any address, because the instance's loopback may not be up yet when this binds.</summary>
    public static PackageServer StartInNamespace(int pid, int port, string path, byte[] content)
    {
        var socket = NetworkNamespace.CreateSocket(pid, AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(IPAddress.Any, port));
            socket.Listen(16);
            return new PackageServer(socket, path, content);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            _ = Task.Run(() => ServeAsync(client));
        }
    }

    private async Task ServeAsync(Socket client)
    {
        using (client)
        {
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                timeout.CancelAfter(TimeSpan.FromSeconds(60));
                var request = await ReadHeadAsync(client, timeout.Token).ConfigureAwait(false);
                var line = request.Split("\r\n", 2)[0].Split(' ');
                bool found = line.Length >= 2 && line[0] is "GET" or "HEAD" && line[1] == _path;
                var head = found
                    ? $"HTTP/1.0 200 OK\r\nContent-Type: application/vnd.debian.binary-package\r\nContent-Length: {_content.Length}\r\nConnection: close\r\n\r\n"
                    : "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                await client.SendAsync(Encoding.ASCII.GetBytes(head), timeout.Token).ConfigureAwait(false);
                if (found && line[0] == "GET")
                {
                    await client.SendAsync(_content, timeout.Token).ConfigureAwait(false);
                    Interlocked.Increment(ref _served);
                }
                client.Shutdown(SocketShutdown.Both);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                // The instance went away or gave up: nothing to answer.
            }
        }
    }

    private static async Task<string> ReadHeadAsync(Socket client, CancellationToken ct)
    {
        var buffer = new byte[8192];
        int used = 0;
        while (used < buffer.Length)
        {
            int n = await client.ReceiveAsync(buffer.AsMemory(used), ct).ConfigureAwait(false);
            if (n == 0)
            {
                break;
            }
            used += n;
            if (Encoding.ASCII.GetString(buffer, 0, used).Contains("\r\n\r\n", StringComparison.Ordinal))
            {
                break;
            }
        }
        return Encoding.ASCII.GetString(buffer, 0, used);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
    }
}
