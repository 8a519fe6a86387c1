namespace Kiln.Build.Definition;

internal enum FromKind { Scratch, OciLayout, OciArchive, Registry, ImageName }

/// <summary>The classified value of <c>from:</c>.</summary>
internal sealed record FromReference(FromKind Kind, string Value, string? LayoutPath = null, string Tag = "latest")
{
    public static FromReference Classify(string value)
    {
        if (value == "scratch")
        {
            return new(FromKind.Scratch, value);
        }

        if (value.StartsWith("oci-archive:", StringComparison.Ordinal))
        {
            return new(FromKind.OciArchive, value);
        }

        if (value.StartsWith("oci:", StringComparison.Ordinal))
        {
            var rest = value["oci:".Length..];
            var colon = rest.LastIndexOf(':');
            // A ':' followed by no '/' separates the tag; otherwise it is part of the path.
            return colon >= 0 && !rest[(colon + 1)..].Contains('/')
                ? new(FromKind.OciLayout, value, rest[..colon], rest[(colon + 1)..])
                : new(FromKind.OciLayout, value, rest);
        }

        if (LooksLikeRegistryReference(value))
        {
            return new(FromKind.Registry, value);
        }

        return new(FromKind.ImageName, value);
    }

    private static bool LooksLikeRegistryReference(string value)
    {
        if (value.Contains("@sha256:", StringComparison.Ordinal))
        {
            return true;
        }

        var slash = value.IndexOf('/');
        if (slash <= 0)
        {
            return false;
        }

        var host = value[..slash];
        return host.Contains('.') || host.Contains(':') || host == "localhost";
    }
}
