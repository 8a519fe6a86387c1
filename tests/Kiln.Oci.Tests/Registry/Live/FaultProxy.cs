using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Kiln.Oci.Tests.Registry.Live;

/// <summary>A TCP proxy in front of a server on 127.0.0.1 that injects faults into chosen HTTP/1.1 requests: it
/// reads each request's head to match a fault (method and a part of the path; each fault is used once), then
/// answers 500 or 429 itself, resets the connection partway through the request body (an upload) or the response (a
/// download), or stops forwarding the response (a stall). Everything else passes through byte for byte.</summary>
public sealed class FaultProxy : IAsyncDisposable
{
    public enum FaultKind
    {
        Status500,
        /// <summary>429 with <c>Retry-After: 1</c>.</summary>
        Status429,
        ResetUpload,
        ResetDownload,
        Stall,
    }

    public sealed record Fault(FaultKind Kind, string Method, string PathContains, long AfterBytes = 0);

    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly int _upstream;
    private readonly List<Fault> _faults = [];
    private readonly List<string> _injected = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accept;
    private readonly List<Task> _connections = [];
    private readonly List<Connection> _live = [];

    public FaultProxy(int upstreamPort)
    {
        _upstream = upstreamPort;
        _listener.Start();
        _accept = Task.Run(AcceptAsync);
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public string Host => $"127.0.0.1:{Port}";

    /// <summary>The faults injected so far, as "KIND METHOD PATH".</summary>
    public IReadOnlyList<string> Injected
    {
        get
        {
            lock (_faults)
            {
                return [.. _injected];
            }
        }
    }

    public void Add(Fault fault)
    {
        lock (_faults)
        {
            _faults.Add(fault);
        }
    }

    private Fault? Take(string method, string path)
    {
        lock (_faults)
        {
            var fault = _faults.FirstOrDefault(f => f.Method == method && path.Contains(f.PathContains, StringComparison.Ordinal));
            if (fault is not null)
            {
                _faults.Remove(fault);
                _injected.Add($"{fault.Kind} {method} {path}");
            }
            return fault;
        }
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            lock (_connections)
            {
                _connections.Add(Task.Run(() => ServeAsync(client)));
            }
        }
    }

    private sealed class Connection(Socket client, Socket server)
    {
        public Socket Client { get; } = client;
        public Socket Server { get; } = server;

        /// <summary>Bytes of response still to forward before the pending download fault fires; -1: none.</summary>
        public long DownBudget = -1;
        public FaultKind DownFault;
        public readonly CancellationTokenSource Closed = new();

        public void Reset()
        {
            foreach (var s in new[] { Client, Server })
            {
                try
                {
                    s.LingerState = new LingerOption(true, 0);
                    s.Close();
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                }
            }
            Closed.Cancel();
        }
    }

    private async Task ServeAsync(Socket client)
    {
        var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var c = new Connection(client, server);
        lock (_connections)
        {
            _live.Add(c);
        }
        try
        {
            await server.ConnectAsync(IPAddress.Loopback, _upstream);
            var down = Task.Run(() => DownAsync(c));
            await UpAsync(c);
            await down;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException or IOException)
        {
        }
        finally
        {
            c.Reset();
        }
    }

    private async Task DownAsync(Connection c)
    {
        var buffer = new byte[65536];
        try
        {
            while (true)
            {
                int n = await c.Server.ReceiveAsync(buffer, c.Closed.Token);
                if (n == 0)
                {
                    c.Client.Shutdown(SocketShutdown.Send);
                    return;
                }
                long budget = Interlocked.Read(ref c.DownBudget);
                if (budget >= 0 && n >= budget)
                {
                    await c.Client.SendAsync(buffer.AsMemory(0, (int)budget), c.Closed.Token);
                    if (c.DownFault == FaultKind.Stall)
                    {
                        await Task.Delay(Timeout.Infinite, c.Closed.Token);
                    }
                    c.Reset();
                    return;
                }
                if (budget >= 0)
                {
                    Interlocked.Add(ref c.DownBudget, -n);
                }
                await c.Client.SendAsync(buffer.AsMemory(0, n), c.Closed.Token);
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
        {
            c.Reset();
        }
    }

    private async Task UpAsync(Connection c)
    {
        var pending = new List<byte>();
        var buffer = new byte[65536];
        while (true)
        {
            // The head of the next request: up to the blank line.
            int end;
            while ((end = HeadEnd(pending)) < 0)
            {
                if (pending.Count > 0 && pending[0] == 0x16)
                {
                    // A TLS handshake (a client trying https first): passed through unparsed.
                    await TunnelAsync(c, pending, buffer);
                    return;
                }
                int n = await c.Client.ReceiveAsync(buffer, c.Closed.Token);
                if (n == 0)
                {
                    c.Server.Shutdown(SocketShutdown.Send);
                    return;
                }
                pending.AddRange(buffer.AsSpan(0, n));
            }
            var head = pending.GetRange(0, end).ToArray();
            pending.RemoveRange(0, end);
            var text = Encoding.ASCII.GetString(head);
            var requestLine = text[..text.IndexOf('\r')].Split(' ');
            string method = requestLine[0], path = requestLine.Length > 1 ? requestLine[1] : "";
            long length = 0;
            bool chunked = false;
            foreach (var line in text.Split("\r\n").Skip(1))
            {
                int colon = line.IndexOf(':');
                if (colon <= 0)
                {
                    continue;
                }
                string name = line[..colon].Trim(), value = line[(colon + 1)..].Trim();
                if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                {
                    length = long.Parse(value);
                }
                else if (name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase))
                {
                    chunked = true;
                }
            }
            var fault = Take(method, path);
            if (fault?.Kind is FaultKind.Status500 or FaultKind.Status429)
            {
                string answer = fault.Kind == FaultKind.Status500
                    ? "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    : "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                await c.Client.SendAsync(Encoding.ASCII.GetBytes(answer), c.Closed.Token);
                c.Client.Shutdown(SocketShutdown.Send);
                await Task.Delay(200);
                c.Reset();
                return;
            }
            if (fault?.Kind is FaultKind.ResetDownload or FaultKind.Stall)
            {
                c.DownFault = fault.Kind;
                Interlocked.Exchange(ref c.DownBudget, fault.AfterBytes);
            }
            await c.Server.SendAsync(head, c.Closed.Token);
            if (chunked)
            {
                // Not parsed: the rest of the connection passes through as it is.
                await TunnelAsync(c, pending, buffer);
                return;
            }
            long limit = fault?.Kind == FaultKind.ResetUpload ? Math.Min(fault.AfterBytes, length) : length;
            long sent = 0;
            while (sent < limit)
            {
                if (pending.Count == 0)
                {
                    int n = await c.Client.ReceiveAsync(buffer, c.Closed.Token);
                    if (n == 0)
                    {
                        return;
                    }
                    pending.AddRange(buffer.AsSpan(0, n));
                }
                int take = (int)Math.Min(pending.Count, limit - sent);
                await c.Server.SendAsync(pending.GetRange(0, take).ToArray(), c.Closed.Token);
                pending.RemoveRange(0, take);
                sent += take;
            }
            if (fault?.Kind == FaultKind.ResetUpload)
            {
                await Task.Delay(100);
                c.Reset();
                return;
            }
        }
    }

    private static async Task TunnelAsync(Connection c, List<byte> pending, byte[] buffer)
    {
        await c.Server.SendAsync(pending.ToArray(), c.Closed.Token);
        while (true)
        {
            int n = await c.Client.ReceiveAsync(buffer, c.Closed.Token);
            if (n == 0)
            {
                c.Server.Shutdown(SocketShutdown.Send);
                return;
            }
            await c.Server.SendAsync(buffer.AsMemory(0, n), c.Closed.Token);
        }
    }

    private static int HeadEnd(List<byte> data)
    {
        for (int i = 3; i < data.Count; i++)
        {
            if (data[i] == '\n' && data[i - 1] == '\r' && data[i - 2] == '\n' && data[i - 3] == '\r')
            {
                return i + 1;
            }
        }
        return -1;
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        await _accept;
        Task[] all;
        lock (_connections)
        {
            all = [.. _connections];
            foreach (var c in _live)
            {
                c.Reset();
            }
        }
        await Task.WhenAny(Task.WhenAll(all), Task.Delay(5000));
        _stop.Dispose();
    }
}
