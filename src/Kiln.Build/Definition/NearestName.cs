namespace Kiln.Build.Definition;

/// <summary>The known name a mistyped one most likely meant, for "did you mean" hints on unknown keys.</summary>
internal static class NearestName
{
    /// <summary>The known name closest to <paramref name="name"/> when it is a near miss: at most two edits
    /// (a transposed pair counts as one), and at most one for names of up to five characters so that a short
    /// key is not matched to an unrelated one; the first in <paramref name="known"/> on a tie. Null otherwise.</summary>
    public static string? Find(string name, IEnumerable<string> known)
    {
        int limit = name.Length <= 5 ? 1 : 2;
        string? best = null;
        int bestDistance = limit + 1;
        foreach (var candidate in known)
        {
            int d = Distance(name, candidate);
            if (d < bestDistance)
            {
                best = candidate;
                bestDistance = d;
            }
        }
        return best;
    }

    /// <summary>The "did you mean" sentence for an unknown <paramref name="name"/>, or empty.</summary>
    public static string Hint(string name, IEnumerable<string> known) =>
        Find(name, known) is { } near ? $"; did you mean `{near}`?" : "";

    /// <summary>Edits (insert, delete, substitute, swap two neighbours) from a to b, ignoring case (a key that
    /// differs only in case is 0 away, and still a near miss): the optimal string alignment distance.</summary>
    internal static int Distance(string a, string b)
    {
        a = a.ToLowerInvariant();
        b = b.ToLowerInvariant();
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }
        for (int j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }
        for (int i = 1; i <= a.Length; i++)
        {
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
                }
            }
        }
        return d[a.Length, b.Length];
    }
}
