namespace Kiln.Oci.Registry;

/// <summary>How a <see cref="RegistryClient"/> reaches one registry. Everything the client would otherwise read
/// from the process (files, environment) comes in here.</summary>
public sealed record RegistryClientOptions
{
    /// <summary>Allow plain HTTP and unverified TLS: registries.conf marks the registry insecure, or the user said
    /// <c>--insecure</c>. HTTPS is tried first.</summary>
    public bool Insecure { get; init; }

    /// <summary>The root of the per-registry TLS directories (<c>ROOT/HOST:PORT/*.crt</c> CAs, <c>*.cert</c> + <c>*.key</c>
    /// client certificates); null: none.</summary>
    public string? CertsDirectory { get; init; } = "/etc/containers/certs.d";

    /// <summary>Looks up the credential for a registry and repository; null: anonymous.</summary>
    public Func<string, string?, CancellationToken, Task<RegistryCredential?>>? Credentials { get; init; }

    /// <summary>Tries of one request before giving up on 5xx, 429, resets and timeouts.</summary>
    public int MaxAttempts { get; init; } = 6;

    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>The longest wait between two tries, also for a Retry-After that asks for more.</summary>
    public TimeSpan RetryMaxDelay { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>How long a request may go without progress (no response headers, no body bytes moving).</summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Blobs larger than this are uploaded in PATCH chunks of this size, so that a dropped connection
    /// costs at most one chunk; 0 uploads every blob in one request.</summary>
    public long ChunkSize { get; init; } = 64L << 20;

    public string UserAgent { get; init; } = "kiln";
}
