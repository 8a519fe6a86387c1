namespace Kiln.Oci.Registry;

/// <summary>The part of containers-registries.conf(5) Kiln uses: which registries are insecure (plain HTTP or
/// unverified TLS allowed). Read from <c>registries.conf</c> then every <c>registries.conf.d/*.conf</c> in name
/// order, a later file's entry for a location replacing an earlier one. Both the v2 form
/// (<c>[[registry]] location = "…" insecure = true</c>) and the v1 form (<c>[registries.insecure] registries = […]</c>)
/// are read; other tables and keys are skipped.</summary>
public sealed class RegistriesConf
{
    private readonly Dictionary<string, bool> _insecure = new(StringComparer.Ordinal);

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

    /// <summary>Whether <paramref name="registry"/> (HOST[:PORT]) is marked insecure: by its own entry, or by a
    /// wildcard (<c>*.example.org</c>) entry.</summary>
    public bool IsInsecure(string registry)
    {
        if (_insecure.TryGetValue(registry, out var exact))
        {
            return exact;
        }
        string host = registry;
        int colon = host.LastIndexOf(':');
        if (colon > 0 && !host.EndsWith(']'))
        {
            host = host[..colon];
        }
        foreach (var (location, insecure) in _insecure.OrderByDescending(e => e.Key.Length))
        {
            if (location.StartsWith("*.", StringComparison.Ordinal) && host.EndsWith(location[1..], StringComparison.Ordinal))
            {
                return insecure;
            }
        }
        return false;
    }

    private void Read(string file, string text)
    {
        string table = "";
        string? location = null;
        bool? insecure = null;
        void Flush()
        {
            if (table == "registry" && location is not null && insecure is { } value)
            {
                // A location with a path (host/namespace) marks only that namespace; the host part is what a
                // client for the whole registry can use only when the entry names the host alone.
                if (!location.Contains('/'))
                {
                    _insecure[location] = value;
                }
            }
            location = null;
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
            else if (table == "registry" && key == "insecure")
            {
                insecure = ReadBool(where, value);
            }
            else if (table == "registries.insecure" && key == "registries")
            {
                foreach (var r in ReadStrings(where, value))
                {
                    _insecure[r] = true;
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
