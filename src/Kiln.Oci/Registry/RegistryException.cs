using System.Net;

namespace Kiln.Oci.Registry;

/// <summary>What kind of failure a <see cref="RegistryException"/> reports, for callers that map it to an exit code.</summary>
public enum RegistryErrorKind
{
    /// <summary>A reference, configuration or credentials file that cannot be read.</summary>
    BadInput,
    AuthenticationFailed,
    NotFound,
    /// <summary>Content that is not what its descriptor says: another digest or size, or a document too large.</summary>
    Refused,
    /// <summary>The registry answered with an error, or could not be reached after the retries.</summary>
    Protocol,
}

/// <summary>A registry operation that failed. The message names the registry, the repository and the blob or
/// manifest; it never holds a credential (they are never passed to a factory here).</summary>
public sealed class RegistryException : Exception
{
    private RegistryException(RegistryErrorKind kind, string message, HttpStatusCode? status = null,
        IReadOnlyList<string>? codes = null, bool transient = false, Exception? inner = null) : base(message, inner)
    {
        Kind = kind;
        Status = status;
        Codes = codes ?? [];
        IsTransient = transient;
    }

    public RegistryErrorKind Kind { get; }

    /// <summary>The HTTP status of the response that failed, when there was one.</summary>
    public HttpStatusCode? Status { get; }

    /// <summary>The distribution error codes of the response body (<c>BLOB_UNKNOWN</c>, <c>DENIED</c>, …).</summary>
    public IReadOnlyList<string> Codes { get; }

    /// <summary>Whether trying again later may succeed (5xx, 429, a dropped connection).</summary>
    public bool IsTransient { get; }

    public static RegistryException BadReference(string value, string problem) =>
        new(RegistryErrorKind.BadInput, $"invalid image reference '{Clip(value)}': {problem}");

    public static RegistryException BadFile(string path, string problem, Exception? inner = null) =>
        new(RegistryErrorKind.BadInput, $"{path}: {problem}", inner: inner);

    public static RegistryException AuthenticationFailed(string registry, string detail) =>
        new(RegistryErrorKind.AuthenticationFailed, $"{registry}: authentication failed: {detail}", HttpStatusCode.Unauthorized);

    public static RegistryException NotFound(string where, string what, IReadOnlyList<string>? codes = null) =>
        new(RegistryErrorKind.NotFound, $"{where}: {what} not found", HttpStatusCode.NotFound, codes);

    public static RegistryException DigestMismatch(string where, Descriptor expected, Digest actual) =>
        new(RegistryErrorKind.Refused, $"{where}: blob {expected.Digest} refused: its content hashes to {actual}");

    public static RegistryException SizeMismatch(string where, Descriptor expected, long actual, bool atLeast = false) =>
        new(RegistryErrorKind.Refused,
            $"{where}: blob {expected.Digest} refused: the registry sent {(atLeast ? "more than " : "")}{actual} bytes, the descriptor says {expected.Size}");

    public static RegistryException TooLarge(string where, string what, long size, long max) =>
        new(RegistryErrorKind.Refused, $"{where}: {what} refused: {size} bytes, a manifest may have at most {max >> 20} MiB");

    public static RegistryException Http(string where, string what, HttpStatusCode status, IReadOnlyList<string> codes, string detail)
    {
        bool transient = (int)status >= 500 || status == HttpStatusCode.TooManyRequests;
        var kind = status switch
        {
            HttpStatusCode.NotFound => RegistryErrorKind.NotFound,
            HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden => RegistryErrorKind.AuthenticationFailed,
            _ => RegistryErrorKind.Protocol,
        };
        string text = $"{where}: {what}: HTTP {(int)status} {status}";
        if (codes.Count > 0)
        {
            text += " (" + string.Join(", ", codes) + ")";
        }
        if (detail.Length > 0)
        {
            text += ": " + Clip(detail);
        }
        if (kind == RegistryErrorKind.AuthenticationFailed)
        {
            text = $"{where}: {what}: authentication failed (HTTP {(int)status}{(codes.Count > 0 ? ", " + string.Join(", ", codes) : "")})";
        }
        return new(kind, text, status, codes, transient);
    }

    public static RegistryException Unreachable(string where, string what, Exception inner) =>
        new(RegistryErrorKind.Protocol, $"{where}: {what}: {inner.Message}", transient: true, inner: inner);

    public static RegistryException PlainHttp(string where, string what, Exception inner) =>
        new(RegistryErrorKind.Protocol, $"{where}: {what}: the registry answers plain HTTP, not HTTPS; to allow plain HTTP for it, "
            + "give --insecure or mark it insecure = true in registries.conf ([[registry]] location = \"" + where + "\")", inner: inner);

    public static RegistryException Protocol(string where, string problem) =>
        new(RegistryErrorKind.Protocol, $"{where}: {problem}");

    public static RegistryException PushFailed(string where, Digest blob, int attempts, Exception inner) =>
        new(RegistryErrorKind.Protocol, $"{where}: pushing blob {blob} failed after {attempts} attempts: {inner.Message}",
            (inner as RegistryException)?.Status, (inner as RegistryException)?.Codes, inner: inner);

    public static RegistryException GaveUp(string where, string what, int attempts, Exception inner) =>
        new(RegistryErrorKind.Protocol, $"{where}: {what}: gave up after {attempts} attempts: {inner.Message}",
            (inner as RegistryException)?.Status, (inner as RegistryException)?.Codes, inner: inner);

    internal static string Clip(string s) => s.Length > 200 ? s[..200] + "…" : s;
}
