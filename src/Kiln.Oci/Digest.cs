
namespace Kiln.Oci;

/// <summary>A validated content digest. Only <c>sha256:</c> followed by 64 lowercase hex digits is accepted,
/// so a digest can be used to build a path without further checks.</summary>
public readonly record struct Digest
{
    public const string Sha256Prefix = "sha256:";

    private Digest(string value) => Value = value;

    /// <summary>The full form, e.g. <c>sha256:0123…</c>.</summary>
    public string Value { get; }

    /// <summary>The 64 hex digits without the algorithm.</summary>
    public string Hex => Value[Sha256Prefix.Length..];

    public string Algorithm => "sha256";

    public static Digest Parse(string text)
    {
        if (!TryParse(text, out var digest, out var problem))
        {
            throw new FormatException($"invalid digest '{Truncate(text)}': {problem}");
        }
        return digest;
    }

    public static bool TryParse(string? text, out Digest digest) => TryParse(text, out digest, out _);

    public static bool TryParse(string? text, out Digest digest, out string problem)
    {
        digest = default;
        if (string.IsNullOrEmpty(text))
        {
            problem = "empty";
            return false;
        }
        int colon = text.IndexOf(':');
        if (colon < 0)
        {
            problem = "no algorithm (expected sha256:HEX)";
            return false;
        }
        if (!text.AsSpan(0, colon).SequenceEqual("sha256"))
        {
            problem = $"unsupported algorithm '{Truncate(text[..colon])}'";
            return false;
        }
        var hex = text.AsSpan(colon + 1);
        if (hex.Length != 64)
        {
            problem = $"expected 64 hex digits, got {hex.Length} characters";
            return false;
        }
        foreach (char c in hex)
        {
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            {
                problem = $"'{c}' is not a lowercase hex digit";
                return false;
            }
        }
        problem = "";
        digest = new Digest(text);
        return true;
    }

    public static Digest FromHex(string hex) => Parse(Sha256Prefix + hex);

    public static Digest FromHash(ReadOnlySpan<byte> sha256) => new(Sha256Prefix + Convert.ToHexStringLower(sha256));

    public static Digest Compute(ReadOnlySpan<byte> data) => FromHash(Sha256Hasher.HashData(data));

    public static Digest Compute(Stream stream) => FromHash(Sha256Hasher.HashData(stream));

    public override string ToString() => Value ?? "";

    /// <summary>The first 12 hex digits, for display.</summary>
    public string Short => Hex[..12];

    private static string Truncate(string s) => s.Length > 80 ? s[..80] + "…" : s;
}
