using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;

namespace Kiln.Oci.Tests.Registry.Live;

/// <summary>A registry auth server as Distribution's token auth expects one: checks Basic credentials and issues
/// ES256 JWTs granting the asked repository actions, signed by a key whose self-signed certificate is in the
/// registry's root bundle (sent in the token's <c>x5c</c>). With a refresh token it also answers OAuth2's
/// <c>grant_type=refresh_token</c> form POST, as a registry's auth server does for a docker identity token.</summary>
public sealed class TokenServer : IAsyncDisposable
{
    public const string Service = "kiln-test-registry";
    public const string Issuer = "kiln-test-issuer";

    private readonly HttpListener _listener = new();
    private readonly ECDsa _key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly X509Certificate2 _certificate;
    private readonly Task _loop;
    private readonly string _user;
    private readonly string _password;
    private readonly string? _refreshToken;
    private int _issued;

    public TokenServer(string dir, string user, string password, string? refreshToken = null)
    {
        _user = user;
        _password = password;
        _refreshToken = refreshToken;
        var request = new CertificateRequest("CN=Kiln test token signer", _key, HashAlgorithmName.SHA256);
        var now = DateTimeOffset.UtcNow;
        _certificate = request.CreateSelfSigned(now.AddDays(-1), now.AddDays(30));
        RootBundle = Path.Combine(dir, "token-root.crt");
        File.WriteAllText(RootBundle, _certificate.ExportCertificatePem() + "\n");
        Port = RegistryServer.FreePort();
        _listener.Prefixes.Add($"http://127.0.0.1:{Port}/");
        _listener.Start();
        _loop = Task.Run(LoopAsync);
    }

    public int Port { get; }

    public string Realm => $"http://127.0.0.1:{Port}/token";

    public string RootBundle { get; }

    /// <summary>The scope parameters of every token request, in order.</summary>
    public List<string> Requests { get; } = [];

    public int Issued => _issued;

    /// <summary>Tokens issued for a refresh token (form POST) rather than for Basic credentials (GET).</summary>
    public int IssuedForRefreshToken;

    private async Task LoopAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }
            try
            {
                Handle(context);
            }
            finally
            {
                context.Response.Close();
            }
        }
    }

    private void Handle(HttpListenerContext context)
    {
        string[] scopes;
        if (context.Request.HttpMethod == "POST")
        {
            using var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8);
            var form = System.Web.HttpUtility.ParseQueryString(reader.ReadToEnd());
            scopes = form["scope"] is { } scope ? [scope] : [];
            lock (Requests)
            {
                Requests.Add(string.Join(" ", scopes));
            }
            if (_refreshToken is null || form["grant_type"] != "refresh_token" || form["refresh_token"] != _refreshToken
                || form["service"] != Service || string.IsNullOrEmpty(form["client_id"]))
            {
                context.Response.StatusCode = 400;
                return;
            }
            Interlocked.Increment(ref IssuedForRefreshToken);
        }
        else
        {
            scopes = context.Request.QueryString.GetValues("scope") ?? [];
            lock (Requests)
            {
                Requests.Add(string.Join(" ", scopes));
            }
            string? header = context.Request.Headers["Authorization"];
            string expected = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(_user + ":" + _password));
            if (header != expected)
            {
                context.Response.StatusCode = 401;
                return;
            }
        }
        var access = new List<object>();
        foreach (var scope in scopes.SelectMany(s => s.Split(' ')))
        {
            var parts = scope.Split(':');
            if (parts.Length == 3 && parts[0] == "repository")
            {
                access.Add(new Dictionary<string, object> { ["type"] = "repository", ["name"] = parts[1], ["actions"] = parts[2].Split(',') });
            }
        }
        long now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var jwtHeader = JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["typ"] = "JWT",
            ["alg"] = "ES256",
            ["x5c"] = new[] { Convert.ToBase64String(_certificate.RawData) },
        });
        var claims = JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["iss"] = Issuer,
            ["sub"] = _user,
            ["aud"] = Service,
            ["exp"] = now + 300,
            ["nbf"] = now - 10,
            ["iat"] = now,
            ["jti"] = Guid.NewGuid().ToString("N"),
            ["access"] = access,
        });
        string signingInput = TestPki.Base64Url(jwtHeader) + "." + TestPki.Base64Url(claims);
        string token = signingInput + "." + TestPki.Base64Url(_key.SignData(Encoding.ASCII.GetBytes(signingInput), HashAlgorithmName.SHA256));
        Interlocked.Increment(ref _issued);
        // The OAuth2 answer names the token access_token; the GET answer token (Distribution's two forms).
        var body = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new Dictionary<string, object>
        {
            [context.Request.HttpMethod == "POST" ? "access_token" : "token"] = token,
            ["expires_in"] = 300,
        }));
        context.Response.ContentType = "application/json";
        context.Response.OutputStream.Write(body);
    }

    public async ValueTask DisposeAsync()
    {
        // Close alone: Stop then Close removes the listener twice, and the second removal re-binds the port.
        _listener.Close();
        await _loop;
        _key.Dispose();
        _certificate.Dispose();
    }
}
