using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Kiln.Oci.Registry;

/// <summary>HTTP for one registry: scheme choice, authentication (Basic, or Bearer tokens cached per scope),
/// redirects (credentials only ever go to the registry's own host), retries with backoff, stall timeouts.</summary>
internal sealed class RegistryTransport : IDisposable
{
    private readonly HttpClient _http;
    private readonly RegistryClientOptions _options;
    private readonly SemaphoreSlim _authLock = new(1, 1);
    private readonly Dictionary<string, (string Token, DateTimeOffset Expires)> _tokens = new(StringComparer.Ordinal);
    private AuthChallenge? _challenge;
    private Uri? _base;

    public RegistryTransport(string registry, RegistryClientOptions options, HttpMessageHandler? handler = null)
    {
        Registry = registry;
        _options = options;
        if (handler is null)
        {
            var sockets = new SocketsHttpHandler
            {
                AllowAutoRedirect = false,
                AutomaticDecompression = DecompressionMethods.None,
                PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
                ConnectTimeout = TimeSpan.FromSeconds(30),
            };
            var roots = CertsDirectory.Load(options.CertsDirectory, registry);
            sockets.SslOptions.RemoteCertificateValidationCallback = options.Insecure
                ? (_, _, _, _) => true
                : CertsDirectory.Validator(roots);
            var clientCertificates = CertsDirectory.LoadClientCertificates(options.CertsDirectory, registry);
            if (clientCertificates.Count > 0)
            {
                sockets.SslOptions.ClientCertificates = clientCertificates;
            }
            handler = sockets;
        }
        _http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.UserAgent.ParseAdd(options.UserAgent);
    }

    public string Registry { get; }

    public RegistryClientOptions Options => _options;

    public void Dispose()
    {
        _http.Dispose();
        _authLock.Dispose();
    }

    /// <summary>https, or for an insecure registry whichever of https and http answers /v2/.</summary>
    public async Task<Uri> BaseAsync(CancellationToken cancellationToken)
    {
        if (_base is not null)
        {
            return _base;
        }
        var https = new Uri("https://" + Registry + "/");
        if (!_options.Insecure)
        {
            return _base = https;
        }
        try
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            cts.CancelAfter(TimeSpan.FromSeconds(10));
            using var probe = await _http.GetAsync(new Uri(https, "v2/"), HttpCompletionOption.ResponseHeadersRead, cts.Token).ConfigureAwait(false);
            return _base = https;
        }
        catch (Exception e) when (e is HttpRequestException or IOException
            || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            return _base = new Uri("http://" + Registry + "/");
        }
    }

    /// <summary>Sends a request built afresh for every try. Transient answers (5xx, 429) and connection failures
    /// are retried up to <see cref="RegistryClientOptions.MaxAttempts"/> (1 when <paramref name="retry"/> is off);
    /// the last answer is returned whatever its status, a last connection failure is thrown. A 401 is answered once
    /// with credentials for <paramref name="scopes"/>; a second one throws an authentication failure.</summary>
    public async Task<HttpResponseMessage> SendAsync(RegistryRequest spec, CancellationToken cancellationToken)
    {
        int attempts = spec.Retry ? Math.Max(1, _options.MaxAttempts) : 1;
        bool authRetried = false;
        Exception? lastError = null;
        for (int failures = 0; ;)
        {
            HttpResponseMessage? response = null;
            try
            {
                response = await SendOnceAsync(spec, cancellationToken).ConfigureAwait(false);
                if (response.StatusCode == HttpStatusCode.Unauthorized && !spec.Unauthenticated)
                {
                    var challenges = AuthChallenge.Parse(string.Join(", ", response.Headers.WwwAuthenticate.Select(h => h.ToString())));
                    var challenge = challenges.FirstOrDefault(c => c.IsBearer) ?? challenges.FirstOrDefault(c => c.IsBasic);
                    // What this request carried, not whether another has learnt the challenge meanwhile: requests sent
                    // at once before the first 401 all go without credentials and must each get their retry.
                    bool hadAuth = response.RequestMessage?.Headers.Authorization is not null;
                    response.Dispose();
                    response = null;
                    if (challenge is null)
                    {
                        throw RegistryException.AuthenticationFailed(Registry, $"{spec.What}: the registry answered 401 without a Basic or Bearer challenge");
                    }
                    if (authRetried || (hadAuth && challenge.IsBasic))
                    {
                        throw await AuthFailure(spec, cancellationToken).ConfigureAwait(false);
                    }
                    authRetried = true;
                    await _authLock.WaitAsync(cancellationToken).ConfigureAwait(false);
                    try
                    {
                        _challenge = challenge;
                        _tokens.Remove(ScopeKey(spec.Scopes));
                    }
                    finally
                    {
                        _authLock.Release();
                    }
                    continue;
                }
                bool transient = (int)response.StatusCode >= 500 || response.StatusCode == HttpStatusCode.TooManyRequests;
                if (!transient || ++failures >= attempts)
                {
                    return response;
                }
                var delay = RetryPolicy.Delay(failures, _options.RetryBaseDelay, _options.RetryMaxDelay, RetryPolicy.RetryAfter(response), Random.Shared);
                response.Dispose();
                await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not RegistryException && RetryPolicy.IsTransient(e, cancellationToken))
            {
                response?.Dispose();
                if (e is HttpRequestException { HttpRequestError: HttpRequestError.SecureConnectionError } && !_options.Insecure
                    && await AnswersPlainHttpAsync(cancellationToken).ConfigureAwait(false))
                {
                    throw RegistryException.PlainHttp(Registry, spec.What, e);
                }
                lastError = e is OperationCanceledException ? new TimeoutException($"no progress for {_options.StallTimeout.TotalSeconds:0.#} s", e) : e;
                if (++failures >= attempts)
                {
                    throw RegistryException.Unreachable(Registry, spec.What, lastError);
                }
                await Task.Delay(RetryPolicy.Delay(failures, _options.RetryBaseDelay, _options.RetryMaxDelay, null, Random.Shared), cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Whether the registry answers plain HTTP where TLS failed: the usual cause of a handshake that fails
    /// at once, worth saying in so many words instead of a TLS error.</summary>
    private async Task<bool> AnswersPlainHttpAsync(CancellationToken cancellationToken)
    {
        try
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            cts.CancelAfter(TimeSpan.FromSeconds(5));
            using var probe = await _http.GetAsync(new Uri("http://" + Registry + "/v2/"), HttpCompletionOption.ResponseHeadersRead, cts.Token).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is HttpRequestException or IOException
            || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            return false;
        }
    }

    private async Task<RegistryException> AuthFailure(RegistryRequest spec, CancellationToken cancellationToken)
    {
        var credential = await CredentialAsync(spec.Repository, cancellationToken).ConfigureAwait(false);
        return RegistryException.AuthenticationFailed(Registry, credential is null
            ? $"{spec.What}: the registry asks for credentials and none are configured for it (kiln login {Registry})"
            : $"{spec.What}: the registry refused the credentials of user '{credential.Username}'");
    }

    private async Task<HttpResponseMessage> SendOnceAsync(RegistryRequest spec, CancellationToken cancellationToken)
    {
        var baseUri = await BaseAsync(cancellationToken).ConfigureAwait(false);
        var uri = new Uri(baseUri, spec.Path);
        var method = spec.Method;
        for (int hop = 0; ; hop++)
        {
            using var watchdog = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            watchdog.CancelAfter(_options.StallTimeout);
            using var request = new HttpRequestMessage(method, uri);
            foreach (var (name, value) in spec.Headers)
            {
                request.Headers.TryAddWithoutValidation(name, value);
            }
            bool ownHost = uri.Authority.Equals(baseUri.Authority, StringComparison.OrdinalIgnoreCase)
                && uri.Scheme == baseUri.Scheme;
            if (ownHost && !spec.Unauthenticated)
            {
                await AuthorizeAsync(request, spec, cancellationToken).ConfigureAwait(false);
            }
            if (spec.Content is not null && hop == 0)
            {
                request.Content = await spec.Content(watchdog, cancellationToken).ConfigureAwait(false);
            }
            var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, watchdog.Token).ConfigureAwait(false);
            int status = (int)response.StatusCode;
            if (status is 301 or 302 or 303 or 307 or 308 && response.Headers.Location is { } location
                && (method == HttpMethod.Get || method == HttpMethod.Head))
            {
                if (hop >= 5)
                {
                    response.Dispose();
                    throw RegistryException.Protocol(Registry, $"{spec.What}: more than 5 redirects");
                }
                // A redirect to storage elsewhere gets no Authorization: the registry's credentials are for it alone.
                uri = new Uri(uri, location);
                response.Dispose();
                continue;
            }
            return response;
        }
    }

    private async Task AuthorizeAsync(HttpRequestMessage request, RegistryRequest spec, CancellationToken cancellationToken)
    {
        var challenge = _challenge;
        if (challenge is null)
        {
            return;
        }
        if (challenge.IsBasic)
        {
            var credential = await CredentialAsync(spec.Repository, cancellationToken).ConfigureAwait(false);
            if (credential is not null)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Basic",
                    Convert.ToBase64String(Encoding.UTF8.GetBytes(credential.Username + ":" + credential.Secret)));
            }
            return;
        }
        string token = await TokenAsync(challenge, spec, cancellationToken).ConfigureAwait(false);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    private Task<RegistryCredential?> CredentialAsync(string? repository, CancellationToken cancellationToken) =>
        _options.Credentials is { } lookup ? lookup(Registry, repository, cancellationToken) : Task.FromResult<RegistryCredential?>(null);

    private static string ScopeKey(IReadOnlyList<string> scopes) => string.Join(' ', scopes);

    private async Task<string> TokenAsync(AuthChallenge challenge, RegistryRequest spec, CancellationToken cancellationToken)
    {
        string key = ScopeKey(spec.Scopes);
        await _authLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_tokens.TryGetValue(key, out var cached) && cached.Expires > DateTimeOffset.UtcNow.AddSeconds(10))
            {
                return cached.Token;
            }
            var realm = challenge["realm"];
            if (realm is null || !Uri.TryCreate(realm, UriKind.Absolute, out var realmUri) || realmUri.Scheme is not ("https" or "http"))
            {
                throw RegistryException.AuthenticationFailed(Registry, $"the Bearer challenge names no usable realm ('{realm}')");
            }
            var query = new StringBuilder();
            if (challenge["service"] is { } service)
            {
                query.Append("service=").Append(Uri.EscapeDataString(service));
            }
            foreach (var scope in spec.Scopes)
            {
                query.Append(query.Length > 0 ? "&" : "").Append("scope=").Append(Uri.EscapeDataString(scope));
            }
            var tokenUri = new UriBuilder(realmUri) { Query = (realmUri.Query.TrimStart('?') + (realmUri.Query.Length > 1 && query.Length > 0 ? "&" : "") + query).ToString() }.Uri;
            var credential = await CredentialAsync(spec.Repository, cancellationToken).ConfigureAwait(false);
            int attempts = Math.Max(1, _options.MaxAttempts);
            for (int failures = 0; ;)
            {
                using var request = credential?.IdentityToken is { Length: > 0 } refresh
                    ? RefreshTokenRequest(realmUri, challenge["service"], spec.Scopes, refresh)
                    : new HttpRequestMessage(HttpMethod.Get, tokenUri);
                if (credential is not null && request.Method == HttpMethod.Get)
                {
                    request.Headers.Authorization = new AuthenticationHeaderValue("Basic",
                        Convert.ToBase64String(Encoding.UTF8.GetBytes(credential.Username + ":" + credential.Secret)));
                }
                HttpResponseMessage response;
                try
                {
                    using var watchdog = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                    watchdog.CancelAfter(_options.StallTimeout);
                    response = await _http.SendAsync(request, watchdog.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (RetryPolicy.IsTransient(e, cancellationToken))
                {
                    if (++failures >= attempts)
                    {
                        throw RegistryException.Unreachable(Registry, $"asking the token server {realmUri.GetLeftPart(UriPartial.Path)} for a token", e);
                    }
                    await Task.Delay(RetryPolicy.Delay(failures, _options.RetryBaseDelay, _options.RetryMaxDelay, null, Random.Shared), cancellationToken).ConfigureAwait(false);
                    continue;
                }
                using (response)
                {
                    if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden
                        || (request.Method == HttpMethod.Post && response.StatusCode == HttpStatusCode.BadRequest))
                    {
                        // OAuth2 answers a refresh token it does not accept with 400 invalid_grant, not 401.
                        throw RegistryException.AuthenticationFailed(Registry, credential is null
                            ? $"the token server refused an anonymous token for {key} (kiln login {Registry})"
                            : request.Method == HttpMethod.Post
                                ? "the token server refused the identity token (kiln login again to get a new one)"
                                : $"the token server refused the credentials of user '{credential.Username}'");
                    }
                    bool transient = (int)response.StatusCode >= 500 || response.StatusCode == HttpStatusCode.TooManyRequests;
                    if (transient && ++failures < attempts)
                    {
                        await Task.Delay(RetryPolicy.Delay(failures, _options.RetryBaseDelay, _options.RetryMaxDelay, RetryPolicy.RetryAfter(response), Random.Shared), cancellationToken).ConfigureAwait(false);
                        continue;
                    }
                    if (!response.IsSuccessStatusCode)
                    {
                        throw RegistryException.Http(Registry, "asking the token server for a token", response.StatusCode, [], "");
                    }
                    var body = await ReadLimitedAsync(response, 1 << 20, cancellationToken).ConfigureAwait(false);
                    var (token, expiresIn) = ParseToken(body);
                    _tokens[key] = (token, DateTimeOffset.UtcNow.AddSeconds(Math.Max(60, expiresIn)));
                    return token;
                }
            }
        }
        finally
        {
            _authLock.Release();
        }
    }

    /// <summary>Distribution's OAuth2 token request for an identity token: a form POST to the realm exchanging the
    /// refresh token for an access token of the scopes asked, as docker does for an <c>identitytoken</c>.</summary>
    private static HttpRequestMessage RefreshTokenRequest(Uri realm, string? service, IReadOnlyList<string> scopes, string refreshToken)
    {
        var form = new List<KeyValuePair<string, string>>
        {
            new("grant_type", "refresh_token"),
            new("refresh_token", refreshToken),
            new("client_id", "kiln"),
        };
        if (service is not null)
        {
            form.Add(new("service", service));
        }
        if (scopes.Count > 0)
        {
            form.Add(new("scope", string.Join(' ', scopes)));
        }
        return new HttpRequestMessage(HttpMethod.Post, realm) { Content = new FormUrlEncodedContent(form) };
    }

    private (string Token, int ExpiresIn) ParseToken(byte[] body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            var root = doc.RootElement;
            string? token = null;
            if (root.TryGetProperty("token", out var t) && t.ValueKind == JsonValueKind.String)
            {
                token = t.GetString();
            }
            if (string.IsNullOrEmpty(token) && root.TryGetProperty("access_token", out var a) && a.ValueKind == JsonValueKind.String)
            {
                token = a.GetString();
            }
            if (string.IsNullOrEmpty(token))
            {
                throw RegistryException.AuthenticationFailed(Registry, "the token server's answer holds no token");
            }
            int expires = root.TryGetProperty("expires_in", out var e) && e.TryGetInt32(out var v) ? v : 60;
            return (token, expires);
        }
        catch (JsonException)
        {
            throw RegistryException.AuthenticationFailed(Registry, "the token server's answer is not JSON");
        }
    }

    public static async Task<byte[]> ReadLimitedAsync(HttpResponseMessage response, int max, CancellationToken cancellationToken)
    {
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int n;
        while ((n = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + n > max)
            {
                throw new InvalidDataException($"more than {max} bytes");
            }
            buffer.Write(chunk, 0, n);
        }
        return buffer.ToArray();
    }

    /// <summary>The error of a failed answer, with the distribution error codes of its body.</summary>
    public async Task<RegistryException> ErrorAsync(HttpResponseMessage response, string where, string what, CancellationToken cancellationToken)
    {
        var codes = new List<string>();
        var messages = new List<string>();
        try
        {
            var body = await ReadLimitedAsync(response, 64 << 10, cancellationToken).ConfigureAwait(false);
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.TryGetProperty("errors", out var errors) && errors.ValueKind == JsonValueKind.Array)
            {
                foreach (var e in errors.EnumerateArray())
                {
                    if (e.TryGetProperty("code", out var c) && c.ValueKind == JsonValueKind.String)
                    {
                        codes.Add(c.GetString()!);
                    }
                    if (e.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String)
                    {
                        messages.Add(m.GetString()!);
                    }
                }
            }
        }
        catch (Exception e) when (e is JsonException or InvalidDataException or IOException or HttpRequestException)
        {
            // The body is only a detail of the error: a registry's error page that is not JSON leaves it out.
        }
        return response.StatusCode == HttpStatusCode.NotFound
            ? RegistryException.NotFound(where, what, codes)
            : RegistryException.Http(where, what, response.StatusCode, codes, string.Join("; ", messages));
    }
}

/// <summary>One request as <see cref="RegistryTransport.SendAsync"/> sends it: built anew for every try.</summary>
internal sealed record RegistryRequest
{
    public required HttpMethod Method { get; init; }

    /// <summary>Relative to the registry's base (<c>v2/…</c>), or absolute (an upload location).</summary>
    public required string Path { get; init; }

    /// <summary>What is being done, for messages: "pulling manifest latest of web".</summary>
    public required string What { get; init; }

    public string? Repository { get; init; }

    /// <summary>Token scopes: <c>repository:NAME:pull</c>, <c>repository:NAME:pull,push</c>.</summary>
    public IReadOnlyList<string> Scopes { get; init; } = [];

    public IReadOnlyList<(string Name, string Value)> Headers { get; init; } = [];

    /// <summary>Makes the body for one try; the watchdog is to be re-armed as the body's bytes move.</summary>
    public Func<CancellationTokenSource, CancellationToken, Task<HttpContent>>? Content { get; init; }

    public bool Retry { get; init; } = true;

    /// <summary>Send no credentials, and return a 401 as it is.</summary>
    public bool Unauthenticated { get; init; }
}
