namespace Kiln.Tests.Shared;

/// <summary>The listing format both test projects read trees in (linked into each; they share no assembly): a
/// shell script's <c>find -printf</c> lines, then "--- hashes", then <c>sha256sum</c> lines; parsed into sorted
/// lines, each with the file's hash appended.</summary>
internal static class TreeLines
{
    public static IReadOnlyList<string> Parse(string output)
    {
        var parts = output.Split("--- hashes\n");
        var hashes = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in parts[1].Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            // "HASH  ./path"
            hashes[line[(64 + 2 + 2)..]] = line[..64];
        }
        var list = new List<string>();
        foreach (var line in parts[0].Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var path = line[..line.IndexOf('\t')];
            list.Add(line + "\t" + hashes.GetValueOrDefault(path, ""));
        }
        list.Sort(StringComparer.Ordinal);
        return list;
    }

    public static void AssertSame(IReadOnlyList<string> expected, IReadOnlyList<string> actual)
    {
        var missing = expected.Except(actual).Take(20).ToList();
        var extra = actual.Except(expected).Take(20).ToList();
        Xunit.Assert.True(missing.Count == 0 && extra.Count == 0,
            $"trees differ ({expected.Count} vs {actual.Count} entries)\nonly in expected:\n  {string.Join("\n  ", missing)}\nonly in actual:\n  {string.Join("\n  ", extra)}");
    }
}
