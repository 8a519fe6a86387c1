using Kiln.Build.Definition;

namespace Kiln.Build.Execution;

/// <summary>Works out the apt sources a bootstrap uses: the given mirror, or the build host's own Debian
/// sources with the host's suite swapped for the requested one (so no mirror host name is ever built in).</summary>
public static class AptSources
{
    public sealed record Entry(string Uri, string Suite, IReadOnlyList<string> Components)
    {
        public string ToLine() => $"deb {Uri} {Suite} {string.Join(' ', Components)}";
    }

    /// <summary>One-line "deb URI SUITE COMPONENTS" entries for the bootstrap, sorted.</summary>
    public static IReadOnlyList<string> ForBootstrap(BootstrapSource source, string etcApt = "/etc/apt", string osRelease = "/etc/os-release")
    {
        if (source.Mirror is { } mirror)
        {
            return [new Entry(mirror, source.Suite, ["main"]).ToLine()];
        }
        var host = ReadHost(etcApt);
        var codename = ReadCodename(osRelease);
        var lines = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var e in host)
        {
            if (codename is null || !IsDebianUri(e, codename))
            {
                continue;
            }
            var suffix = e.Suite[codename.Length..];
            lines.Add(new Entry(e.Uri, source.Suite + suffix, e.Components).ToLine());
        }
        if (lines.Count == 0)
        {
            throw new InvalidOperationException(
                $"no Debian apt source found in {etcApt} for this host's suite '{codename ?? "?"}'; " +
                "give the bootstrap a mirror (bootstrap: {distro: debian, suite: ..., mirror: URI})");
        }
        return [.. lines];
    }

    private static bool IsDebianUri(Entry e, string codename) =>
        e.Suite == codename || (e.Suite.StartsWith(codename + "-", StringComparison.Ordinal));

    public static string? ReadCodename(string osRelease)
    {
        if (!File.Exists(osRelease))
        {
            return null;
        }
        foreach (var line in File.ReadLines(osRelease))
        {
            if (line.StartsWith("VERSION_CODENAME=", StringComparison.Ordinal))
            {
                return line["VERSION_CODENAME=".Length..].Trim('"');
            }
        }
        return null;
    }

    /// <summary>The host's deb entries from sources.list, *.list and *.sources (deb822).</summary>
    public static IReadOnlyList<Entry> ReadHost(string etcApt)
    {
        var entries = new List<Entry>();
        var main = Path.Combine(etcApt, "sources.list");
        if (File.Exists(main))
        {
            entries.AddRange(ParseOneLine(File.ReadAllLines(main)));
        }
        var dir = Path.Combine(etcApt, "sources.list.d");
        if (Directory.Exists(dir))
        {
            foreach (var f in Directory.GetFiles(dir).Order(StringComparer.Ordinal))
            {
                if (f.EndsWith(".list", StringComparison.Ordinal))
                {
                    entries.AddRange(ParseOneLine(File.ReadAllLines(f)));
                }
                else if (f.EndsWith(".sources", StringComparison.Ordinal))
                {
                    entries.AddRange(ParseDeb822(File.ReadAllText(f)));
                }
            }
        }
        return entries;
    }

    internal static IEnumerable<Entry> ParseOneLine(IEnumerable<string> lines)
    {
        foreach (var raw in lines)
        {
            var line = raw;
            int hash = line.IndexOf('#');
            if (hash >= 0)
            {
                line = line[..hash];
            }
            var parts = line.Split(' ', '\t').Where(p => p.Length > 0).ToList();
            if (parts.Count < 3 || parts[0] != "deb")
            {
                continue;
            }
            int i = 1;
            if (parts[i].StartsWith('['))
            {
                while (i < parts.Count && !parts[i].EndsWith(']'))
                {
                    i++;
                }
                i++;
            }
            if (i + 1 >= parts.Count)
            {
                continue;
            }
            yield return new Entry(parts[i], parts[i + 1], parts.Skip(i + 2).ToList());
        }
    }

    internal static IEnumerable<Entry> ParseDeb822(string text)
    {
        foreach (var stanza in text.Replace("\r", "").Split("\n\n", StringSplitOptions.RemoveEmptyEntries))
        {
            var fields = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            string? last = null;
            foreach (var line in stanza.Split('\n'))
            {
                if (line.StartsWith('#') || line.Length == 0)
                {
                    continue;
                }
                if ((line[0] == ' ' || line[0] == '\t') && last is not null)
                {
                    fields[last] += " " + line.Trim();
                    continue;
                }
                int colon = line.IndexOf(':');
                if (colon > 0)
                {
                    last = line[..colon].Trim();
                    fields[last] = line[(colon + 1)..].Trim();
                }
            }
            if (!fields.TryGetValue("Types", out var types) || !types.Split(' ').Contains("deb"))
            {
                continue;
            }
            if (fields.TryGetValue("Enabled", out var enabled) && enabled.Equals("no", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }
            var comps = fields.GetValueOrDefault("Components", "").Split(' ', StringSplitOptions.RemoveEmptyEntries);
            foreach (var uri in fields.GetValueOrDefault("URIs", "").Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                foreach (var suite in fields.GetValueOrDefault("Suites", "").Split(' ', StringSplitOptions.RemoveEmptyEntries))
                {
                    yield return new Entry(uri, suite, comps);
                }
            }
        }
    }
}
