namespace Kiln.Build.Minimize;

/// <summary>A glob over absolute image paths: <c>*</c> and <c>?</c> match within one name, <c>**</c> any number of
/// names (none included). A pattern without a glob character also matches everything below it, as <c>keep:</c> reads.</summary>
public sealed class PathGlob
{
    private readonly string[] _parts;

    public PathGlob(string pattern, bool prefix = true)
    {
        Pattern = pattern;
        var parts = pattern.Split('/', StringSplitOptions.RemoveEmptyEntries).ToList();
        if (prefix && pattern.IndexOfAny(['*', '?']) < 0)
        {
            parts.Add("**");
        }
        _parts = [.. parts];
    }

    public string Pattern { get; }

    public bool Matches(string path) => Match(_parts, 0, path.Split('/', StringSplitOptions.RemoveEmptyEntries), 0);

    private static bool Match(string[] pattern, int p, string[] names, int n)
    {
        while (p < pattern.Length)
        {
            if (pattern[p] == "**")
            {
                for (int skip = n; skip <= names.Length; skip++)
                {
                    if (Match(pattern, p + 1, names, skip))
                    {
                        return true;
                    }
                }
                return false;
            }
            if (n >= names.Length || !MatchName(pattern[p], 0, names[n], 0))
            {
                return false;
            }
            p++;
            n++;
        }
        return n == names.Length;
    }

    private static bool MatchName(string pattern, int p, string name, int n)
    {
        while (p < pattern.Length)
        {
            char c = pattern[p];
            if (c == '*')
            {
                for (int skip = n; skip <= name.Length; skip++)
                {
                    if (MatchName(pattern, p + 1, name, skip))
                    {
                        return true;
                    }
                }
                return false;
            }
            if (n >= name.Length || (c != '?' && c != name[n]))
            {
                return false;
            }
            p++;
            n++;
        }
        return n == name.Length;
    }

    public static bool Any(IEnumerable<PathGlob> globs, string path) => globs.Any(g => g.Matches(path));
}
