using System.Net;
using System.Net.Sockets;
using Kiln.Build.Testing.Boot;

namespace Kiln.Build.Local;

/// <summary>Publishes an instance's ports on the host: a listening socket per port in kiln's own network namespace,
/// and for each connection accepted there a connection to the port on the instance's loopback, relayed both ways.</summary>
/// <remarks>The connection into the instance is a socket made inside its network namespace (a thread enters it with
/// setns(2), makes the socket and comes back; <see cref="NetworkNamespace"/>), the way the boot phase's http checks
/// connect. So the instance keeps a namespace with loopback only: no veth pair, no address plan, no firewall rule and
/// no helper process, nothing outside kiln's process that could outlive it; its sockets go with it. A connection costs
/// a copy through kiln, which is no concern for trying a server out by hand. The namespace is asked for on each
/// connection, so the listening sockets stay while the instance behind them is replaced (kiln run --watch).</remarks>
public sealed class PortForwarder : IAsyncDisposable
{
    private readonly Func<int?> _namespacePid;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Socket> _listeners = [];
    private readonly List<Task> _loops = [];
    private readonly HashSet<Socket> _open = [];
    private readonly Lock _gate = new();
    private readonly List<Task> _relays = [];

    private PortForwarder(Func<int?> namespacePid) => _namespacePid = namespacePid;

    /// <param name="namespacePid">A host pid in the instance's network namespace, or null while there is none (a
    /// connection is then closed at once).</param>
    public static PortForwarder Start(IReadOnlyList<PublishedPort> ports, Func<int?> namespacePid)
    {
        ArgumentNullException.ThrowIfNull(ports);
        var forwarder = new PortForwarder(namespacePid);
        try
        {
            foreach (var port in ports)
            {
                var listener = new Socket(port.HostAddress.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                forwarder._listeners.Add(listener);
                try
                {
                    listener.Bind(port.HostEndPoint);
                    listener.Listen(128);
                }
                catch (SocketException e)
                {
                    throw LocalException.CannotListen(port, e);
                }
            }
            for (int i = 0; i < ports.Count; i++)
            {
                forwarder._loops.Add(forwarder.AcceptAsync(forwarder._listeners[i], ports[i]));
            }
            return forwarder;
        }
        catch
        {
            forwarder.DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw;
        }
    }

    private async Task AcceptAsync(Socket listener, PublishedPort port)
    {
        var ct = _stop.Token;
        while (!ct.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (ct.IsCancellationRequested)
                {
                    return;
                }
                continue;
            }
            var relay = RelayAsync(client, port, ct);
            lock (_gate)
            {
                _relays.RemoveAll(t => t.IsCompleted);
                _relays.Add(relay);
            }
        }
    }

    private async Task RelayAsync(Socket client, PublishedPort port, CancellationToken ct)
    {
        Track(client);
        Socket? upstream = null;
        try
        {
            if (_namespacePid() is not int pid)
            {
                return;
            }
            try
            {
                upstream = await NetworkNamespace.ConnectTcpAsync(pid, IPAddress.Loopback, port.Port, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is InstanceException or SocketException or OperationCanceledException)
            {
                // Nothing listens there (yet), or the instance is going: the client sees its connection closed.
                return;
            }
            Track(upstream);
            await Task.WhenAll(PumpAsync(client, upstream, ct), PumpAsync(upstream, client, ct)).ConfigureAwait(false);
        }
        finally
        {
            Close(client);
            if (upstream is not null)
            {
                Close(upstream);
            }
        }
    }

    /// <summary>Copies one direction until its end, then passes the end on (a half close), as the peer sent it.</summary>
    private static async Task PumpAsync(Socket from, Socket to, CancellationToken ct)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                int n = await from.ReceiveAsync(buffer, SocketFlags.None, ct).ConfigureAwait(false);
                if (n == 0)
                {
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }
                int sent = 0;
                while (sent < n)
                {
                    sent += await to.SendAsync(buffer.AsMemory(sent, n - sent), SocketFlags.None, ct).ConfigureAwait(false);
                }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // A reset, or the forwarder stopping: both ends are closed by the relay.
            try
            {
                from.Shutdown(SocketShutdown.Both);
                to.Shutdown(SocketShutdown.Both);
            }
            catch (Exception shut) when (shut is SocketException or ObjectDisposedException)
            {
            }
        }
    }

    private void Track(Socket socket)
    {
        lock (_gate)
        {
            _open.Add(socket);
        }
    }

    private void Close(Socket socket)
    {
        lock (_gate)
        {
            _open.Remove(socket);
        }
        socket.Dispose();
    }

    /// <summary>Stops listening and closes every relayed connection.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested)
        {
            return;
        }
        await _stop.CancelAsync().ConfigureAwait(false);
        foreach (var l in _listeners)
        {
            l.Dispose();
        }
        // The accept loops first: once they are done, no relay starts.
        await Task.WhenAll(_loops).ConfigureAwait(false);
        Task[] relays;
        lock (_gate)
        {
            foreach (var s in _open)
            {
                s.Dispose();
            }
            relays = [.. _relays];
        }
        await Task.WhenAll(relays).ConfigureAwait(false);
        _stop.Dispose();
    }
}
