namespace Kiln.Oci.Registry;

/// <summary>The part of containers-registries.conf(5) Kiln uses: the <c>[[registry]]</c> entries (<c>prefix</c>,
/// <c>location</c>, <c>insecure</c>), each scoped to the names its prefix matches, the longest matching prefix
/// winning. Read from <c>registries.conf</c> then every <c>registries.conf.d/*.conf</c> in name order, a later
/// entry for a prefix replacing an earlier one. The v1 form (<c>[registries.insecure] registries = […]</c>) is read
/// as host entries; other tables and keys are skipped.</summary>
public sealed class RegistriesConf
{
    private readonly Dictionary<string, RegistryEntry> _entries = new(StringComparer.Ordinal);

    public IReadOnlyCollection<RegistryEntry> Entries => _entries.Values;

    public static RegistriesConf Load(string path = "/etc/containers/registries.conf", string? dropInDirectory = null)
    {
        var conf = new RegistriesConf();
        dropInDirectory ??= path + ".d";
        if (File.Exists(path))
        {
            conf.Read(path, File.ReadAllText(path));
        }
        if (Directory.Exists(dropInDirectory))
        {
            foreach (var file in Directory.EnumerateFiles(dropInDirectory, "*.conf").Order(StringComparer.Ordinal))
            {
                conf.Read(file, File.ReadAllText(file));
            }
        }
        return conf;
    }

    public static RegistriesConf Parse(string name, string text)
    {
        var conf = new RegistriesConf();
        conf.Read(name, text);
        return conf;
    }

    /// <summary>The entry for <paramref name="name"/> (<c>HOST[:PORT]</c> or <c>HOST[:PORT]/REPO</c>, no tag or
    /// digest): among the entries whose prefix is the name or a parent of it at a <c>/</c>, or whose <c>*.DOMAIN</c>
    /// prefix matches the host, the one matching the most characters; null when none does.</summary>
    public RegistryEntry? Find(string name)
    {
        int slash = name.IndexOf('/');
        string host = slash < 0 ? name : name[..slash];
        string bareHost = host;
        int colon = bareHost.LastIndexOf(':');
        if (colon > 0 && !bareHost.EndsWith(']'))
        {
            bareHost = bareHost[..colon];
        }
        RegistryEntry? best = null;
        int bestLength = -1;
        bool bestWildcard = false;
        foreach (var entry in _entries.Values)
        {
            string prefix = entry.Prefix;
            int length;
            bool wildcard = prefix.StartsWith("*.", StringComparison.Ordinal);
            if (wildcard)
            {
                // A wildcard names hosts only; it matches as much of the name as the host is.
                if (!bareHost.EndsWith(prefix[1..], StringComparison.Ordinal))
                {
                    continue;
                }
                length = host.Length;
            }
            else if (name == prefix || name.StartsWith(prefix + "/", StringComparison.Ordinal))
            {
                length = prefix.Length;
            }
            else
            {
                continue;
            }
            if (length > bestLength || (length == bestLength && bestWildcard && !wildcard))
            {
                best = entry;
                bestLength = length;
                bestWildcard = wildcard;
            }
        }
        return best;
    }

    /// <summary>Whether <paramref name="name"/> (a registry or a repository of one) may be reached over plain HTTP or
    /// unverified TLS: the insecure flag of the entry <see cref="Find"/> gives for it.</summary>
    public bool IsInsecure(string name) => Find(name)?.Insecure ?? false;

    /// <summary>Where to pull <paramref name="name"/> from: the matched entry's prefix replaced by its location (a
    /// wildcard entry's location is not used, as the manual says); the name itself when no entry moves it.</summary>
    public string Rewrite(string name)
    {
        if (Find(name) is not { } entry || entry.Prefix.StartsWith("*.", StringComparison.Ordinal) || entry.Location == entry.Prefix)
        {
            return name;
        }
        return entry.Location + name[entry.Prefix.Length..];
    }

    private void Read(string file, string text)
    {
        string table = "";
        string? location = null;
        string? prefix = null;
        bool? insecure = null;
        int entryLine = 0;
        void Flush()
        {
            if (table == "registry" && (location is not null || prefix is not null))
            {
                string effective = prefix ?? location!;
                if (effective.StartsWith("*.", StringComparison.Ordinal) && effective.Contains('/'))
                {
                    throw RegistryException.BadFile($"{file}:{entryLine}", $"the wildcard prefix '{effective}' may name hosts only, no path");
                }
                _entries[effective] = new RegistryEntry(effective, location ?? effective, insecure ?? false);
            }
            location = null;
            prefix = null;
            insecure = null;
        }
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            string line = StripComment(lines[i]).Trim();
            if (line.Length == 0)
            {
                continue;
            }
            if (line.StartsWith("[[", StringComparison.Ordinal) || line.StartsWith('['))
            {
                Flush();
                table = line.Trim('[', ']', ' ');
                entryLine = i + 1;
                continue;
            }
            int eq = line.IndexOf('=');
            if (eq <= 0)
            {
                throw RegistryException.BadFile($"{file}:{i + 1}", $"expected KEY = VALUE, found '{RegistryException.Clip(line)}'");
            }
            string key = line[..eq].Trim().Trim('"');
            string value = line[(eq + 1)..].Trim();
            // A value that opens an array may continue on the next lines.
            while (value.StartsWith('[') && !value.Contains(']') && i + 1 < lines.Length)
            {
                value += " " + StripComment(lines[++i]).Trim();
            }
            string where = $"{file}:{i + 1}";
            if (table == "registry" && key == "location")
            {
                location = ReadString(where, value);
            }
            else if (table == "registry" && key == "prefix")
            {
                prefix = ReadString(where, value);
            }
            else if (table == "registry" && key == "insecure")
            {
                insecure = ReadBool(where, value);
            }
            else if (table == "registries.insecure" && key == "registries")
            {
                foreach (var r in ReadStrings(where, value))
                {
                    _entries[r] = new RegistryEntry(r, r, true);
                }
            }
        }
        Flush();
    }

    private static string StripComment(string line)
    {
        bool quoted = false;
        char quote = '\0';
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quoted)
            {
                if (c == quote)
                {
                    quoted = false;
                }
            }
            else if (c is '"' or '\'')
            {
                quoted = true;
                quote = c;
            }
            else if (c == '#')
            {
                return line[..i];
            }
        }
        return line;
    }

    private static string ReadString(string where, string value)
    {
        if (value.Length >= 2 && (value[0] == '"' && value[^1] == '"' || value[0] == '\'' && value[^1] == '\''))
        {
            return value[1..^1];
        }
        throw RegistryException.BadFile(where, $"expected a quoted string, found '{RegistryException.Clip(value)}'");
    }

    private static bool ReadBool(string where, string value) => value switch
    {
        "true" => true,
        "false" => false,
        _ => throw RegistryException.BadFile(where, $"expected true or false, found '{RegistryException.Clip(value)}'"),
    };

    private static IEnumerable<string> ReadStrings(string where, string value)
    {
        if (!value.StartsWith('[') || !value.EndsWith(']'))
        {
            throw RegistryException.BadFile(where, $"expected an array of strings, found '{RegistryException.Clip(value)}'");
        }
        return value[1..^1].Split(',').Select(v => v.Trim()).Where(v => v.Length > 0).Select(v => ReadString(where, v));
    }
}

/// <summary>One <c>[[registry]]</c> entry: the names it applies to (<see cref="Prefix"/>, defaulting to the location),
/// where they are pulled from, and whether plain HTTP and unverified TLS are allowed there.</summary>
public sealed record RegistryEntry(string Prefix, string Location, bool Insecure);
