using System.Net;
using Kiln.Oci.Tests.Registry.Live;

namespace Kiln.Oci.Tests.Registry;

/// <summary>An HttpListener on 127.0.0.1 and a free port that answers with a handler and records each request's
/// path and Authorization header: a stand-in for a registry that misbehaves in ways a real one will not.</summary>
internal sealed class FakeHttpServer : IDisposable
{
    private readonly HttpListener _http;
    private readonly Task _loop;

    public FakeHttpServer(Action<HttpListenerContext> handle)
    {
        // A port found free can be taken by a parallel test before Start binds it, so a few fresh ports are tried.
        for (int attempt = 1; ; attempt++)
        {
            Port = RegistryServer.FreePort();
            _http = new HttpListener();
            _http.Prefixes.Add($"http://127.0.0.1:{Port}/");
            try
            {
                _http.Start();
                break;
            }
            catch (HttpListenerException) when (attempt < 5)
            {
                _http.Close();
            }
        }
        _loop = Task.Run(async () =>
        {
            while (_http.IsListening)
            {
                HttpListenerContext context;
                try
                {
                    context = await _http.GetContextAsync();
                }
                catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
                {
                    return;
                }
                lock (Seen)
                {
                    Seen.Add((context.Request.Url!.AbsolutePath, context.Request.Headers["Authorization"]));
                }
                try
                {
                    handle(context);
                }
                finally
                {
                    context.Response.Close();
                }
            }
        });
    }

    public int Port { get; }

    public List<(string Path, string? Authorization)> Seen { get; } = [];

    public void Dispose()
    {
        // Close alone: Stop then Close removes the listener twice, and the second removal re-binds the port,
        // which fails when a parallel test has taken it since.
        _http.Close();
        _loop.Wait(5000);
    }
}
