using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;

namespace Kiln.Oci.Registry;

/// <summary>What <see cref="RegistryClient.PushBlobAsync"/> had to do.</summary>
public enum BlobPushResult
{
    /// <summary>The registry had the blob already.</summary>
    Present,
    /// <summary>The registry linked it from another repository (cross-repository mount).</summary>
    Mounted,
    Uploaded,
}

/// <summary>A manifest or index as the registry served it: its bytes, and the descriptor that names them.</summary>
public sealed record RegistryManifest(Descriptor Descriptor, byte[] Content);

/// <summary>The OCI distribution protocol (v1.1) against one registry: manifests, blobs, uploads, referrers and
/// tags. Everything that comes in is checked against the digest and size that name it.</summary>
public sealed partial class RegistryClient : IDisposable
{
    /// <summary>The largest manifest or index accepted, as the distribution spec recommends.</summary>
    public const int MaxManifestSize = 4 << 20;

    private static readonly string[] ManifestTypes =
        [MediaTypes.ImageManifest, MediaTypes.ImageIndex, MediaTypes.DockerManifest, MediaTypes.DockerManifestList];

    private readonly RegistryTransport _transport;

    public RegistryClient(string registry, RegistryClientOptions? options = null)
        : this(registry, options ?? new RegistryClientOptions(), null)
    {
    }

    internal RegistryClient(string registry, RegistryClientOptions options, HttpMessageHandler? handler)
    {
        _transport = new RegistryTransport(registry, options, handler);
    }

    public string Registry => _transport.Registry;

    public void Dispose() => _transport.Dispose();

    private RegistryClientOptions Options => _transport.Options;

    private string Where(string repository) => Registry + "/" + repository;

    private static string Pull(string repository) => $"repository:{repository}:pull";

    private static string Push(string repository) => $"repository:{repository}:pull,push";

    /// <summary>Checks that the registry speaks the distribution protocol (<c>GET /v2/</c>), authenticating if it asks.</summary>
    public async Task PingAsync(CancellationToken cancellationToken = default)
    {
        using var response = await _transport.SendAsync(new RegistryRequest
        {
            Method = HttpMethod.Get,
            Path = "v2/",
            What = "checking the registry (GET /v2/)",
        }, cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw await _transport.ErrorAsync(response, Registry, "checking the registry (GET /v2/)", cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Checks that the registry accepts the configured credentials: an authenticated <c>GET /v2/</c>
    /// (Basic sends them to the registry; Bearer to the token server, which refuses wrong ones).</summary>
    public Task CheckCredentialsAsync(CancellationToken cancellationToken = default) => PingAsync(cancellationToken);

    // ---- manifests ----

    /// <summary>The descriptor of a manifest by tag or digest (HEAD), or null when the registry has none.</summary>
    public async Task<Descriptor?> ResolveManifestAsync(string repository, string reference, CancellationToken cancellationToken = default)
    {
        string what = $"resolving manifest {reference}";
        using (var response = await _transport.SendAsync(ManifestRequest(HttpMethod.Head, repository, reference, what), cancellationToken).ConfigureAwait(false))
        {
            if (response.StatusCode == HttpStatusCode.NotFound)
            {
                return null;
            }
            if (!response.IsSuccessStatusCode)
            {
                throw RegistryException.Http(Where(repository), what, response.StatusCode, [], "");
            }
            var digestHeader = response.Headers.TryGetValues("Docker-Content-Digest", out var values) ? values.FirstOrDefault() : null;
            var type = response.Content.Headers.ContentType?.MediaType;
            if (Digest.TryParse(digestHeader, out var digest) && response.Content.Headers.ContentLength is { } length && type is not null
                && (!Digest.TryParse(reference, out var asked) || asked == digest))
            {
                if (length > MaxManifestSize)
                {
                    throw RegistryException.TooLarge(Where(repository), $"manifest {reference}", length, MaxManifestSize);
                }
                return new Descriptor { MediaType = type, Digest = digest, Size = length };
            }
        }
        // A registry that leaves out the digest on HEAD: the manifest itself tells.
        try
        {
            return (await GetManifestAsync(repository, reference, cancellationToken).ConfigureAwait(false)).Descriptor;
        }
        catch (RegistryException e) when (e.Kind == RegistryErrorKind.NotFound)
        {
            return null;
        }
    }

    /// <summary>A manifest or index by tag or digest, at most <see cref="MaxManifestSize"/> bytes, checked against the
    /// digest when asked by digest.</summary>
    public async Task<RegistryManifest> GetManifestAsync(string repository, string reference, CancellationToken cancellationToken = default)
    {
        string what = $"pulling manifest {reference}";
        using var response = await _transport.SendAsync(ManifestRequest(HttpMethod.Get, repository, reference, what), cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw await _transport.ErrorAsync(response, Where(repository), $"manifest {reference}", cancellationToken).ConfigureAwait(false);
        }
        if (response.Content.Headers.ContentLength is > MaxManifestSize)
        {
            throw RegistryException.TooLarge(Where(repository), $"manifest {reference}", response.Content.Headers.ContentLength.Value, MaxManifestSize);
        }
        byte[] content;
        try
        {
            content = await RegistryTransport.ReadLimitedAsync(response, MaxManifestSize, cancellationToken).ConfigureAwait(false);
        }
        catch (InvalidDataException)
        {
            throw RegistryException.TooLarge(Where(repository), $"manifest {reference}", MaxManifestSize + 1L, MaxManifestSize);
        }
        var digest = Digest.Compute(content);
        if (Digest.TryParse(reference, out var asked) && asked != digest)
        {
            throw RegistryException.DigestMismatch(Where(repository),
                new Descriptor { MediaType = "manifest", Digest = asked, Size = content.Length }, digest);
        }
        var type = ManifestMediaType(response.Content.Headers.ContentType?.MediaType, content)
            ?? throw RegistryException.Protocol(Where(repository), $"manifest {reference}: no media type in the answer or the document");
        return new RegistryManifest(new Descriptor { MediaType = type, Digest = digest, Size = content.Length }, content);
    }

    /// <summary>Stores a manifest or index under a tag or its digest; returns its digest.</summary>
    public async Task<Digest> PutManifestAsync(string repository, string reference, string mediaType, ReadOnlyMemory<byte> content,
        CancellationToken cancellationToken = default)
    {
        var digest = Digest.Compute(content.Span);
        if (content.Length > MaxManifestSize)
        {
            throw RegistryException.TooLarge(Where(repository), $"manifest {digest}", content.Length, MaxManifestSize);
        }
        if (Digest.TryParse(reference, out var asked) && asked != digest)
        {
            throw new ArgumentException($"the manifest hashes to {digest}, not to the reference {asked}", nameof(reference));
        }
        string what = $"pushing manifest {digest} as {reference}";
        using var response = await _transport.SendAsync(new RegistryRequest
        {
            Method = HttpMethod.Put,
            Path = $"v2/{repository}/manifests/{reference}",
            What = what,
            Repository = repository,
            Scopes = [Push(repository)],
            Content = (_, _) =>
            {
                var body = new ReadOnlyMemoryContent(content);
                body.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
                return Task.FromResult<HttpContent>(body);
            },
        }, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.Created && !response.IsSuccessStatusCode)
        {
            throw await _transport.ErrorAsync(response, Where(repository), what, cancellationToken).ConfigureAwait(false);
        }
        return digest;
    }

    private RegistryRequest ManifestRequest(HttpMethod method, string repository, string reference, string what) => new()
    {
        Method = method,
        Path = $"v2/{repository}/manifests/{reference}",
        What = what,
        Repository = repository,
        Scopes = [Pull(repository)],
        Headers = [.. ManifestTypes.Select(t => ("Accept", t))],
    };

    private static string? ManifestMediaType(string? header, byte[] content)
    {
        if (header is not null && (MediaTypes.IsManifest(header) || MediaTypes.IsIndex(header)))
        {
            return header;
        }
        try
        {
            using var doc = JsonDocument.Parse(content);
            if (doc.RootElement.ValueKind == JsonValueKind.Object
                && doc.RootElement.TryGetProperty("mediaType", out var m) && m.ValueKind == JsonValueKind.String)
            {
                return m.GetString();
            }
            // An OCI document may leave its media type out: the members say which it is.
            if (doc.RootElement.ValueKind == JsonValueKind.Object)
            {
                return doc.RootElement.TryGetProperty("manifests", out _) ? MediaTypes.ImageIndex
                    : doc.RootElement.TryGetProperty("config", out _) ? MediaTypes.ImageManifest : header;
            }
        }
        catch (JsonException)
        {
        }
        return header;
    }

    // ---- blobs ----

    /// <summary>The size of a blob the registry has, or null when it has none (HEAD).</summary>
    public async Task<long?> BlobSizeAsync(string repository, Digest digest, CancellationToken cancellationToken = default)
    {
        string what = $"checking blob {digest}";
        using var response = await _transport.SendAsync(new RegistryRequest
        {
            Method = HttpMethod.Head,
            Path = $"v2/{repository}/blobs/{digest}",
            What = what,
            Repository = repository,
            Scopes = [Pull(repository)],
        }, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
        if (!response.IsSuccessStatusCode)
        {
            throw RegistryException.Http(Where(repository), what, response.StatusCode, [], "");
        }
        return response.Content.Headers.ContentLength ?? -1;
    }

    /// <summary>Opens a blob for reading. The stream throws a <see cref="RegistryException"/> instead of ending when
    /// the content is not the descriptor's (size or digest); <paramref name="progress"/> gets the bytes of each read.</summary>
    public async Task<VerifiedBlobStream> OpenBlobAsync(string repository, Descriptor descriptor, IProgress<long>? progress = null,
        CancellationToken cancellationToken = default)
    {
        string where = Where(repository);
        var (response, body) = await BlobGetAsync(repository, descriptor, 0, cancellationToken).ConfigureAwait(false);
        return new VerifiedBlobStream(descriptor, where, response, body,
            (offset, ct) => BlobGetAsync(repository, descriptor, offset, ct), progress, Options.StallTimeout,
            Math.Max(1, Options.MaxAttempts), Backoff);
    }

    private TimeSpan Backoff(int failures) =>
        RetryPolicy.Delay(failures, Options.RetryBaseDelay, Options.RetryMaxDelay, null, Random.Shared);

    private async Task<(HttpResponseMessage, Stream)> BlobGetAsync(string repository, Descriptor descriptor, long offset, CancellationToken cancellationToken)
    {
        string what = offset == 0 ? $"pulling blob {descriptor.Digest}" : $"resuming blob {descriptor.Digest} at byte {offset}";
        var response = await _transport.SendAsync(new RegistryRequest
        {
            Method = HttpMethod.Get,
            Path = $"v2/{repository}/blobs/{descriptor.Digest}",
            What = what,
            Repository = repository,
            Scopes = [Pull(repository)],
            Headers = offset > 0 ? [("Range", $"bytes={offset}-")] : [],
        }, cancellationToken).ConfigureAwait(false);
        try
        {
            if (!response.IsSuccessStatusCode)
            {
                throw await _transport.ErrorAsync(response, Where(repository), $"blob {descriptor.Digest}", cancellationToken).ConfigureAwait(false);
            }
            VerifiedBlobStream.CheckRange(response, offset, descriptor, Where(repository));
            var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            return (response, body);
        }
        catch
        {
            response.Dispose();
            throw;
        }
    }

    // ---- tags and referrers ----

    /// <summary>Every tag of a repository, following the registry's pages (<c>Link: …; rel="next"</c>).</summary>
    public async Task<IReadOnlyList<string>> ListTagsAsync(string repository, CancellationToken cancellationToken = default)
    {
        var tags = new List<string>();
        string? path = $"v2/{repository}/tags/list";
        for (int page = 0; path is not null && page < 10_000; page++)
        {
            using var response = await _transport.SendAsync(new RegistryRequest
            {
                Method = HttpMethod.Get,
                Path = path,
                What = "listing tags",
                Repository = repository,
                Scopes = [Pull(repository)],
            }, cancellationToken).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                throw await _transport.ErrorAsync(response, Where(repository), "listing tags", cancellationToken).ConfigureAwait(false);
            }
            var body = await RegistryTransport.ReadLimitedAsync(response, 16 << 20, cancellationToken).ConfigureAwait(false);
            try
            {
                using var doc = JsonDocument.Parse(body);
                if (doc.RootElement.TryGetProperty("tags", out var list) && list.ValueKind == JsonValueKind.Array)
                {
                    tags.AddRange(list.EnumerateArray().Where(t => t.ValueKind == JsonValueKind.String).Select(t => t.GetString()!));
                }
            }
            catch (JsonException e)
            {
                throw RegistryException.Protocol(Where(repository), "listing tags: the answer is not JSON: " + e.Message);
            }
            path = NextLink(response);
        }
        return tags;
    }

    private static string? NextLink(HttpResponseMessage response)
    {
        if (!response.Headers.TryGetValues("Link", out var links))
        {
            return null;
        }
        foreach (var link in links)
        {
            int open = link.IndexOf('<'), close = link.IndexOf('>');
            if (open >= 0 && close > open && link.Contains("rel=\"next\"", StringComparison.Ordinal))
            {
                return link[(open + 1)..close].TrimStart('/');
            }
        }
        return null;
    }

    /// <summary>The manifests that name <paramref name="subject"/> as their subject: the referrers API, or where the
    /// registry lacks it the <c>sha256-HEX</c> tag index of the spec's fallback. Empty when there are none.</summary>
    public async Task<IReadOnlyList<Referrer>> GetReferrersAsync(string repository, Digest subject, string? artifactType = null,
        CancellationToken cancellationToken = default)
    {
        string what = $"listing referrers of {subject}";
        string path = $"v2/{repository}/referrers/{subject}" + (artifactType is null ? "" : "?artifactType=" + Uri.EscapeDataString(artifactType));
        using (var response = await _transport.SendAsync(new RegistryRequest
        {
            Method = HttpMethod.Get,
            Path = path,
            What = what,
            Repository = repository,
            Scopes = [Pull(repository)],
            Headers = [("Accept", MediaTypes.ImageIndex)],
        }, cancellationToken).ConfigureAwait(false))
        {
            if (response.IsSuccessStatusCode && response.Content.Headers.ContentType?.MediaType == MediaTypes.ImageIndex)
            {
                var body = await RegistryTransport.ReadLimitedAsync(response, MaxManifestSize, cancellationToken).ConfigureAwait(false);
                return ReadReferrers(repository, what, body, artifactType);
            }
            if (response.StatusCode != HttpStatusCode.NotFound)
            {
                throw await _transport.ErrorAsync(response, Where(repository), what, cancellationToken).ConfigureAwait(false);
            }
        }
        try
        {
            var fallback = await GetManifestAsync(repository, ReferrersTag(subject), cancellationToken).ConfigureAwait(false);
            return ReadReferrers(repository, what, fallback.Content, artifactType);
        }
        catch (RegistryException e) when (e.Kind == RegistryErrorKind.NotFound)
        {
            return [];
        }
    }

    /// <summary>Adds a referrer to the fallback tag index of <paramref name="subject"/>, for registries without the
    /// referrers API. The entries already there are kept as they are.</summary>
    public async Task AddReferrerToFallbackAsync(string repository, Digest subject, Referrer referrer, CancellationToken cancellationToken = default)
    {
        string tag = ReferrersTag(subject);
        byte[]? current = null;
        try
        {
            current = (await GetManifestAsync(repository, tag, cancellationToken).ConfigureAwait(false)).Content;
        }
        catch (RegistryException e) when (e.Kind == RegistryErrorKind.NotFound)
        {
        }
        if (current is not null && ReadReferrers(repository, "reading " + tag, current, null).Any(r => r.Descriptor.Digest == referrer.Descriptor.Digest))
        {
            return;
        }
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteNumber("schemaVersion", 2);
            w.WriteString("mediaType", MediaTypes.ImageIndex);
            w.WriteStartArray("manifests");
            if (current is not null)
            {
                using var doc = JsonDocument.Parse(current);
                if (doc.RootElement.TryGetProperty("manifests", out var list) && list.ValueKind == JsonValueKind.Array)
                {
                    foreach (var entry in list.EnumerateArray())
                    {
                        entry.WriteTo(w);
                    }
                }
            }
            w.WriteStartObject();
            w.WriteString("mediaType", referrer.Descriptor.MediaType);
            w.WriteString("digest", referrer.Descriptor.Digest.Value);
            w.WriteNumber("size", referrer.Descriptor.Size);
            if (referrer.ArtifactType is not null)
            {
                w.WriteString("artifactType", referrer.ArtifactType);
            }
            if (referrer.Descriptor.Annotations is { Count: > 0 } annotations)
            {
                w.WriteStartObject("annotations");
                foreach (var (k, v) in annotations.OrderBy(a => a.Key, StringComparer.Ordinal))
                {
                    w.WriteString(k, v);
                }
                w.WriteEndObject();
            }
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteEndObject();
        }
        await PutManifestAsync(repository, tag, MediaTypes.ImageIndex, buffer.ToArray(), cancellationToken).ConfigureAwait(false);
    }

    public static string ReferrersTag(Digest subject) => subject.Algorithm + "-" + subject.Hex;

    private IReadOnlyList<Referrer> ReadReferrers(string repository, string what, byte[] body, string? artifactType)
    {
        try
        {
            var index = OciJson.DeserializeIndex(body);
            using var doc = JsonDocument.Parse(body);
            var types = doc.RootElement.GetProperty("manifests").EnumerateArray()
                .Select(e => e.TryGetProperty("artifactType", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null)
                .ToList();
            // Filtering here as well is harmless where the registry filtered already, and needed where it did not.
            return [.. index.Manifests.Select((d, i) => new Referrer(d, types[i])).Where(r => artifactType is null || r.ArtifactType == artifactType)];
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw RegistryException.Protocol(Where(repository), $"{what}: not an image index: {e.Message}");
        }
    }
}

/// <summary>A manifest that refers to another (its subject), with the artifact type its index entry names.</summary>
public sealed record Referrer(Descriptor Descriptor, string? ArtifactType);
