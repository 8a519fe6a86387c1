namespace Kiln.Build.Definition;

/// <summary>Paths relative to the build context: normalising them and proving they stay inside it.</summary>
internal static class ContextPaths
{
    private const int MaxLinks = 40;

    /// <summary>Normalises a relative path as written (forward slashes, no "." components, ".." folded,
    /// trailing slash kept); null with an error when it is absolute or climbs out of the context.</summary>
    public static string? Normalise(string written, out string? error)
    {
        error = null;
        if (written.Length == 0)
        {
            error = "is empty";
            return null;
        }

        if (written.StartsWith('/'))
        {
            error = "is an absolute path; copy sources are relative to the build context";
            return null;
        }

        var parts = new List<string>();
        foreach (var part in written.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (part == ".")
            {
                continue;
            }

            if (part == "..")
            {
                if (parts.Count == 0)
                {
                    error = "leaves the build context";
                    return null;
                }

                parts.RemoveAt(parts.Count - 1);
                continue;
            }

            parts.Add(part);
        }

        var trailing = written.EndsWith('/') || written.EndsWith("/.", StringComparison.Ordinal) || written == ".";
        if (parts.Count == 0)
        {
            return trailing ? "./" : ".";
        }

        var joined = string.Join('/', parts);
        return written.EndsWith('/') ? joined + "/" : joined;
    }

    /// <summary>The absolute path of a normalised relative path.</summary>
    public static string Combine(string contextDir, string normalised)
    {
        var trimmed = normalised.TrimEnd('/');
        return trimmed is "." or "" ? contextDir : Path.Combine(contextDir, trimmed);
    }

    /// <summary>Checks that a normalised source exists and that its real path (symlinks of itself and
    /// its parents resolved) is inside the context; null when it is fine, else what is wrong.</summary>
    public static string? CheckSource(string contextDir, string normalised)
    {
        var full = Combine(contextDir, normalised);
        var info = new FileInfo(full);
        if (!info.Exists && !Directory.Exists(full) && info.LinkTarget is null)
        {
            return "does not exist in the build context";
        }

        var realContext = RealPath(contextDir);
        var real = RealPath(full);
        if (real is null || realContext is null)
        {
            return "is a symbolic link that cannot be resolved";
        }

        if (!IsInside(realContext, real))
        {
            return $"resolves to {real}, outside the build context";
        }

        if (normalised.EndsWith('/') && !Directory.Exists(real))
        {
            return "ends with '/' but is not a directory";
        }

        return null;
    }

    public static bool IsInside(string root, string path) =>
        path == root || path.StartsWith(root.EndsWith('/') ? root : root + "/", StringComparison.Ordinal);

    /// <summary>Like realpath(3): every symlink resolved; null when a link loops or dangles too deep.</summary>
    public static string? RealPath(string absolutePath)
    {
        var pending = new Stack<string>(absolutePath.Split('/', StringSplitOptions.RemoveEmptyEntries).Reverse());
        var current = "/";
        var links = 0;
        while (pending.Count > 0)
        {
            var part = pending.Pop();
            if (part == ".")
            {
                continue;
            }

            if (part == "..")
            {
                current = Path.GetDirectoryName(current) ?? "/";
                continue;
            }

            var candidate = current == "/" ? "/" + part : current + "/" + part;
            var target = new FileInfo(candidate).LinkTarget;
            if (target is null)
            {
                current = candidate;
                continue;
            }

            if (++links > MaxLinks)
            {
                return null;
            }

            foreach (var t in target.Split('/', StringSplitOptions.RemoveEmptyEntries).Reverse())
            {
                pending.Push(t);
            }

            if (target.StartsWith('/'))
            {
                current = "/";
            }
        }

        return current;
    }
}
