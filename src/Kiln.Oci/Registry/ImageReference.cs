namespace Kiln.Oci.Registry;

/// <summary>A parsed <c>HOST[:PORT]/REPO[:TAG|@DIGEST]</c>. The registry host is required: a reference without one
/// is refused rather than completed with a default registry, so an image never goes somewhere unnamed.</summary>
public sealed partial record ImageReference
{
    /// <summary>The registry as written, with its port: <c>registry.example:5000</c>.</summary>
    public required string Registry { get; init; }

    /// <summary>The repository path inside the registry: <c>team/web</c>.</summary>
    public required string Repository { get; init; }

    public string? Tag { get; init; }

    public Digest? Digest { get; init; }

    /// <summary>What to ask the registry for: the digest when there is one, else the tag, else <c>latest</c>.</summary>
    public string Reference => Digest?.Value ?? Tag ?? "latest";

    public override string ToString() =>
        Registry + "/" + Repository + (Tag is null ? "" : ":" + Tag) + (Digest is null ? "" : "@" + Digest.Value.Value);

    public static ImageReference Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length == 0)
        {
            throw RegistryException.BadReference(text, "empty");
        }
        if (text.Length > 4096)
        {
            throw RegistryException.BadReference(text, "longer than 4096 characters");
        }
        string rest = text;
        Digest? digest = null;
        int at = rest.IndexOf('@');
        if (at >= 0)
        {
            if (!Oci.Digest.TryParse(rest[(at + 1)..], out var d, out var problem))
            {
                throw RegistryException.BadReference(text, $"bad digest: {problem}");
            }
            digest = d;
            rest = rest[..at];
        }
        int slash = rest.IndexOf('/');
        string first = slash < 0 ? rest : rest[..slash];
        if (slash < 0 || !(first.Contains('.') || first.Contains(':') || first == "localhost"))
        {
            throw RegistryException.BadReference(text,
                "no registry host: write HOST[:PORT]/REPOSITORY[:TAG|@DIGEST] (the first component must name a host: "
                + "contain '.' or ':', or be 'localhost')");
        }
        string host = first;
        if (!ValidHost(host))
        {
            throw RegistryException.BadReference(text, $"'{host}' is not a valid registry host[:port]");
        }
        string path = rest[(slash + 1)..];
        string? tag = null;
        int lastSlash = path.LastIndexOf('/');
        int colon = path.IndexOf(':', lastSlash + 1);
        if (colon >= 0)
        {
            tag = path[(colon + 1)..];
            path = path[..colon];
            if (!ValidTag(tag))
            {
                throw RegistryException.BadReference(text,
                    $"'{tag}' is not a valid tag (letters, digits, '_', '.', '-', at most 128, not starting with '.' or '-')");
            }
        }
        if (!ValidRepository(path, out var why))
        {
            throw RegistryException.BadReference(text, $"'{path}' is not a valid repository name: {why}");
        }
        return new ImageReference { Registry = host, Repository = path, Tag = tag, Digest = digest };
    }

    private static bool ValidHost(string host)
    {
        int colon = host.LastIndexOf(':');
        string name = host;
        if (colon >= 0 && !host.StartsWith('['))
        {
            string port = host[(colon + 1)..];
            if (port.Length == 0 || port.Length > 5 || !port.All(char.IsAsciiDigit) || int.Parse(port) is 0 or > 65535)
            {
                return false;
            }
            name = host[..colon];
        }
        if (name.Length == 0)
        {
            return false;
        }
        if (name.StartsWith('['))
        {
            return name.EndsWith(']') || host.Contains("]:");
        }
        foreach (var label in name.Split('.'))
        {
            if (label.Length == 0 || label.StartsWith('-') || label.EndsWith('-')
                || !label.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'))
            {
                return false;
            }
        }
        return true;
    }

    internal static bool ValidTag(string tag) =>
        tag.Length is > 0 and <= 128 && (char.IsAsciiLetterOrDigit(tag[0]) || tag[0] == '_')
        && tag.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-');

    /// <summary>The distribution spec's name grammar: lowercase components of alphanumerics joined by one '.', one
    /// or two '_', or any number of '-', separated by '/'.</summary>
    internal static bool ValidRepository(string path, out string problem)
    {
        problem = "";
        if (path.Length == 0)
        {
            problem = "empty";
            return false;
        }
        if (path.Length > 255)
        {
            problem = "longer than 255 characters";
            return false;
        }
        if (!NameGrammar().IsMatch(path))
        {
            problem = "components of lowercase letters and digits, joined by '.', '_', '__' or dashes, separated by '/'";
            return false;
        }
        return true;
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$")]
    private static partial System.Text.RegularExpressions.Regex NameGrammar();
}
