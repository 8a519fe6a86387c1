using System.Net;
using Kiln.Oci.Tests.Registry.Live;

namespace Kiln.Oci.Tests.Registry;

/// <summary>An HttpListener on 127.0.0.1 and a free port that answers with a handler and records each request's
/// path and Authorization header: a stand-in for a registry that misbehaves in ways a real one will not.</summary>
internal sealed class FakeHttpServer : IDisposable
{
    private readonly HttpListener _http = new();
    private readonly Task _loop;

    public FakeHttpServer(Action<HttpListenerContext> handle)
    {
        Port = RegistryServer.FreePort();
        _http.Prefixes.Add($"http://127.0.0.1:{Port}/");
        _http.Start();
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
        _http.Stop();
        _http.Close();
        _loop.Wait(5000);
    }
}
