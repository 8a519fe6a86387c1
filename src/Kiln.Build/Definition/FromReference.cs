namespace Kiln.Build.Definition;

internal enum FromKind { Scratch, OciLayout, OciArchive, DockerArchive, Registry, ImageName }

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
            // oci-archive:FILE[:TAG]; no tag (an empty Tag) means the archive's only image.
            var (path, tag) = SplitTag(value["oci-archive:".Length..]);
            return new(FromKind.OciArchive, value, path, tag ?? "");
        }

        if (value.StartsWith("docker-archive:", StringComparison.Ordinal))
        {
            // docker-archive:FILE[:REPO[:TAG]], as skopeo writes it: the file ends at the first ':', since a
            // RepoTags name may hold ':' and '/' itself (host:5000/web:1).
            var rest = value["docker-archive:".Length..];
            int colon = rest.IndexOf(':');
            return colon < 0 ? new(FromKind.DockerArchive, value, rest, "") : new(FromKind.DockerArchive, value, rest[..colon], rest[(colon + 1)..]);
        }

        if (value.StartsWith("oci:", StringComparison.Ordinal))
        {
            var (path, tag) = SplitTag(value["oci:".Length..]);
            return tag is null ? new(FromKind.OciLayout, value, path) : new(FromKind.OciLayout, value, path, tag);
        }

        if (LooksLikeRegistryReference(value))
        {
            return new(FromKind.Registry, value);
        }

        return new(FromKind.ImageName, value);
    }

    /// <summary>A ':' followed by no '/' separates the tag; otherwise it is part of the path.</summary>
    private static (string Path, string? Tag) SplitTag(string rest)
    {
        var colon = rest.LastIndexOf(':');
        return colon >= 0 && !rest[(colon + 1)..].Contains('/') ? (rest[..colon], rest[(colon + 1)..]) : (rest, null);
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
