namespace Kiln.Build.Provenance;

/// <summary>An installed package as dpkg's status file describes it.</summary>
public sealed record DpkgPackage
{
    public required string Name { get; init; }
    public required string Version { get; init; }
    public required string Architecture { get; init; }

    /// <summary>The source package (the Source field without its version, or the package's own name).</summary>
    public required string Source { get; init; }

    /// <summary>The source version when it differs from <see cref="Version"/> (<c>Source: NAME (VERSION)</c>).</summary>
    public string? SourceVersion { get; init; }

    public string? Maintainer { get; init; }
}

/// <summary>Reads <c>/var/lib/dpkg/status</c> and the copyright files of <c>/usr/share/doc</c>: the text formats dpkg and
/// Debian policy define (RFC 822-like stanzas, DEP-5 machine-readable copyright).</summary>
public static class DpkgDatabase
{
    /// <summary>The installed packages (status <c>install ok installed</c>), sorted by name then architecture.</summary>
    public static IReadOnlyList<DpkgPackage> ParseStatus(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var packages = new List<DpkgPackage>();
        foreach (var stanza in Stanzas(text))
        {
            if (!stanza.TryGetValue("Package", out var name) || !stanza.TryGetValue("Version", out var version)
                || !(stanza.TryGetValue("Status", out var status) && status.EndsWith(" installed", StringComparison.Ordinal)))
            {
                continue;
            }
            string source = name;
            string? sourceVersion = null;
            if (stanza.TryGetValue("Source", out var src) && src.Length > 0)
            {
                int paren = src.IndexOf(" (", StringComparison.Ordinal);
                source = paren < 0 ? src : src[..paren];
                sourceVersion = paren < 0 ? null : src[(paren + 2)..].TrimEnd(')');
            }
            packages.Add(new DpkgPackage
            {
                Name = name,
                Version = version,
                Architecture = stanza.GetValueOrDefault("Architecture") ?? "all",
                Source = source,
                SourceVersion = sourceVersion,
                Maintainer = stanza.GetValueOrDefault("Maintainer"),
            });
        }
        return [.. packages.OrderBy(p => p.Name, StringComparer.Ordinal).ThenBy(p => p.Architecture, StringComparer.Ordinal)];
    }

    /// <summary>The license short names of a machine-readable (DEP-5) copyright file, in order of first appearance
    /// (the <c>Files: *</c> paragraph first); empty when the file is not machine-readable or names none.</summary>
    public static IReadOnlyList<string> CopyrightLicenses(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var stanzas = Stanzas(text).ToList();
        if (stanzas.Count == 0 || !stanzas[0].ContainsKey("Format"))
        {
            return [];
        }
        var ordered = stanzas.Skip(1).Where(s => s.ContainsKey("Files"))
            .OrderBy(s => s["Files"].Trim() == "*" ? 0 : 1)
            .Select(s => s.GetValueOrDefault("License"))
            .OfType<string>();
        var names = new List<string>();
        foreach (var license in ordered)
        {
            // The first line of a License field is the short name (or an expression of them: "GPL-2+ or Artistic").
            var first = license.Split('\n')[0].Trim();
            if (first.Length > 0 && !names.Contains(first))
            {
                names.Add(first);
            }
        }
        return names;
    }

    /// <summary>The paths of a <c>PKG.list</c> file; and from a <c>PKG.md5sums</c> file, path to MD5 (paths made absolute).</summary>
    public static IReadOnlyDictionary<string, string> ParseMd5Sums(string text)
    {
        var sums = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n'))
        {
            int space = line.IndexOf("  ", StringComparison.Ordinal);
            if (space == 32)
            {
                sums["/" + line[(space + 2)..].TrimStart('/')] = line[..32];
            }
        }
        return sums;
    }

    /// <summary>RFC 822-like stanzas: fields with continuation lines folded in (a lone " ." is an empty line).</summary>
    private static IEnumerable<Dictionary<string, string>> Stanzas(string text)
    {
        var current = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        string? field = null;
        foreach (var raw in text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n'))
        {
            if (raw.Trim().Length == 0)
            {
                if (current.Count > 0)
                {
                    yield return current;
                    current = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
                }
                field = null;
                continue;
            }
            if (raw[0] is ' ' or '\t')
            {
                if (field is not null)
                {
                    var more = raw.Trim();
                    current[field] += "\n" + (more == "." ? "" : more);
                }
                continue;
            }
            if (raw[0] == '#')
            {
                continue;
            }
            int colon = raw.IndexOf(':');
            if (colon <= 0)
            {
                continue;
            }
            field = raw[..colon];
            current[field] = raw[(colon + 1)..].Trim();
        }
        if (current.Count > 0)
        {
            yield return current;
        }
    }
}
