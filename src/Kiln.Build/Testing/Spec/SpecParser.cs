using System.Globalization;
using System.Text.RegularExpressions;
using Kiln.Build.Definition;

namespace Kiln.Build.Testing.Spec;

/// <summary>Validates and normalises a spec tree in one pass over it, collecting every problem (with its
/// position) before anything is returned; checks are built only when no problem was found.</summary>
internal sealed partial class SpecParser
{
    public static readonly string[] Sections = ["file", "package", "user", "group", "command", "port", "http", "service"];

    /// <summary>The matchers each section accepts; docs/kiln-yaml.md lists each of them (a test checks it).</summary>
    internal static readonly IReadOnlyDictionary<string, string[]> Matchers = new Dictionary<string, string[]>(StringComparer.Ordinal)
    {
        ["file"] = ["exists", "type", "mode", "owner", "group", "link-target", "contains", "sha256"],
        ["package"] = ["installed", "version"],
        ["user"] = ["exists", "uid", "gid", "home", "shell"],
        ["group"] = ["exists", "gid"],
        ["command"] = ["exit-status", "stdout", "stderr", "stdout-matches", "stderr-matches", "timeout", "phase"],
        ["port"] = ["listening"],
        ["http"] = ["status", "body", "headers", "timeout"],
        ["service"] = ["enabled", "active"],
    };

    private readonly List<DefinitionProblem> _problems;
    private readonly BootMode _boot;

    private SpecParser(List<DefinitionProblem> problems, BootMode boot)
    {
        _problems = problems;
        _boot = boot;
    }

    /// <summary>The checks of <paramref name="root"/>; problems are added to <paramref name="problems"/>.</summary>
    public static List<Check> Parse(YNode root, BootMode boot, List<DefinitionProblem> problems) =>
        new SpecParser(problems, boot).Top(root);

    private List<Check> Top(YNode root)
    {
        var checks = new List<Check>();
        if (root is YScalar { IsNull: true })
        {
            return checks;
        }

        if (root is not YMapping top)
        {
            Problem(root, $"a test spec is a map of sections ({string.Join(", ", Sections)}), found {root.KindName}");
            return checks;
        }

        foreach (var entry in top.Entries)
        {
            if (!UsableKey(entry, top, "in the test spec"))
            {
                continue;
            }

            var section = entry.Name!;
            if (!Sections.Contains(section))
            {
                Problem(entry.Key, $"unknown section `{section}` in the test spec (expected {string.Join(", ", Sections)})");
                continue;
            }

            if (section == "service" && _boot != BootMode.Systemd)
            {
                Problem(entry.Key, "`service` checks need `boot: systemd` on the image");
            }

            if (entry.Value is YScalar { IsNull: true })
            {
                continue;
            }

            if (entry.Value is not YMapping subjects)
            {
                Problem(entry.Value, $"`{section}` expects a map of {SubjectWord(section)} to checks, found {entry.Value.KindName}");
                continue;
            }

            foreach (var s in subjects.Entries)
            {
                if (UsableKey(s, subjects, $"in `{section}`") && Subject(section, (YScalar)s.Key) is { } subject
                    && Matcher(section, subject, s.Value) is { } check)
                {
                    checks.Add(check);
                }
            }
        }

        return checks;
    }

    private static string SubjectWord(string section) => section switch
    {
        "file" => "absolute path",
        "package" => "package name",
        "user" => "user name",
        "group" => "group name",
        "command" => "command line",
        "port" => "PROTOCOL:PORT (e.g. tcp:8080)",
        "http" => "URL",
        _ => "unit name",
    };

    /// <summary>The normalised subject, or null (with a problem) when it is not valid for the section.</summary>
    private string? Subject(string section, YScalar key)
    {
        var text = key.Value;
        string? error = section switch
        {
            "file" => DefinitionSyntax.IsAbsoluteImagePath(text) ? null : "is not an absolute path inside the image (starts with '/', no '..')",
            "package" => PackageName().IsMatch(text) ? null : "is not a Debian package name",
            "user" or "group" => AccountName().IsMatch(text) ? null : "is not a valid name (no ':', '/' or white space)",
            "command" => text.Trim().Length > 0 ? null : "is empty",
            "port" => PortSubject().Match(text) is { Success: true } m && int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture) is >= 1 and <= 65535
                ? null : "is not PROTOCOL:PORT with tcp or udp and a port from 1 to 65535 (e.g. tcp:8080)",
            "http" => Uri.TryCreate(text, UriKind.Absolute, out var u) && u.Scheme is "http" or "https" ? null : "is not an http or https URL",
            _ => UnitName().IsMatch(text) ? null : "is not a systemd unit name",
        };
        if (error is not null)
        {
            Problem(key, $"{section} `{text}` {error}");
            return null;
        }

        return section == "file" ? DefinitionSyntax.NormaliseImagePath(text).TrimEnd('/') is { Length: > 0 } p ? p : "/" : text;
    }

    private Check? Matcher(string section, string subject, YNode node)
    {
        var where = $"in {section} `{subject}`";
        YMapping map;
        switch (node)
        {
            case YMapping m:
                map = m;
                break;
            case YScalar { IsNull: true }:
                map = new YMapping(node.Mark, []);
                break;
            default:
                Problem(node, $"{section} `{subject}` expects a map of matchers ({string.Join(", ", Matchers[section])}), found {node.KindName}");
                return null;
        }

        int before = _problems.Count;
        foreach (var entry in map.Entries)
        {
            if (UsableKey(entry, map, where) && !Matchers[section].Contains(entry.Name!))
            {
                Problem(entry.Key, $"unknown matcher `{entry.Name}` {where} (expected {string.Join(", ", Matchers[section])})");
            }
        }

        var r = new Reader(this, map);
        Check check = section switch
        {
            "file" => new FileCheck
            {
                Mark = node.Mark,
                Subject = subject,
                Exists = r.Bool("exists") ?? true,
                Type = r.OneOf("type", ["file", "directory", "symlink"]) switch
                {
                    "file" => FileType.File,
                    "directory" => FileType.Directory,
                    "symlink" => FileType.Symlink,
                    _ => null,
                },
                Mode = r.Mode("mode"),
                Owner = r.Account("owner"),
                Group = r.Account("group"),
                LinkTarget = r.String("link-target"),
                Contains = r.Strings("contains"),
                Sha256 = r.Sha256("sha256"),
            },
            "package" => new PackageCheck { Mark = node.Mark, Subject = subject, Installed = r.Bool("installed") ?? true, Version = r.String("version") },
            "user" => new UserCheck
            {
                Mark = node.Mark,
                Subject = subject,
                Exists = r.Bool("exists") ?? true,
                Uid = r.Int("uid", 0, uint.MaxValue),
                Gid = r.Int("gid", 0, uint.MaxValue),
                Home = r.String("home"),
                Shell = r.String("shell"),
            },
            "group" => new GroupCheck { Mark = node.Mark, Subject = subject, Exists = r.Bool("exists") ?? true, Gid = r.Int("gid", 0, uint.MaxValue) },
            "command" => new CommandCheck
            {
                Mark = node.Mark,
                Subject = subject,
                ExitStatus = (int)(r.Int("exit-status", 0, 255) ?? 0),
                Stdout = r.Strings("stdout"),
                Stderr = r.Strings("stderr"),
                StdoutMatches = r.Regex("stdout-matches"),
                StderrMatches = r.Regex("stderr-matches"),
                Timeout = r.Seconds("timeout") ?? TimeSpan.FromSeconds(30),
                RunPhase = r.OneOf("phase", ["bake", "boot"]) == "boot" ? TestPhase.Boot : TestPhase.Bake,
            },
            "port" => PortCheck(node, subject, r),
            "http" => new HttpCheck
            {
                Mark = node.Mark,
                Subject = subject,
                Url = new Uri(subject, UriKind.Absolute),
                Status = (int)(r.Int("status", 100, 599) ?? 200),
                Body = r.Strings("body"),
                Headers = r.Headers("headers"),
                Timeout = r.Seconds("timeout") ?? TimeSpan.FromSeconds(10),
            },
            _ => new ServiceCheck { Mark = node.Mark, Subject = subject, Enabled = r.Bool("enabled"), Active = r.Bool("active") },
        };
        if (check is FileCheck { Exists: false } f
            && (f.Type is not null || f.Mode is not null || f.Owner is not null || f.Group is not null || f.LinkTarget is not null || f.Sha256 is not null || f.Contains.Count > 0))
        {
            Problem(node, $"file `{subject}` has `exists: false` and matchers about its content or metadata; drop one or the other");
        }

        if (check is FileCheck { LinkTarget: not null, Type: not (null or FileType.Symlink) })
        {
            Problem(node, $"file `{subject}` has `link-target` but a `type` other than symlink");
        }

        return _problems.Count == before ? check : null;
    }

    private static PortCheck PortCheck(YNode node, string subject, Reader r)
    {
        var m = PortSubject().Match(subject);
        return new PortCheck
        {
            Mark = node.Mark,
            Subject = subject,
            Protocol = m.Groups[1].Value,
            Port = int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture),
            Listening = r.Bool("listening") ?? true,
        };
    }

    /// <summary>Reports a non-scalar or duplicate key; true when the key is a usable first occurrence.</summary>
    private bool UsableKey(YEntry entry, YMapping map, string where)
    {
        if (entry.Key is not YScalar { IsNull: false })
        {
            Problem(entry.Key, $"a key {where} must be a string, found {entry.Key.KindName}");
            return false;
        }

        if (!ReferenceEquals(map.Find(entry.Name!), entry))
        {
            Problem(entry.Key, $"duplicate key `{entry.Name}` {where}");
            return false;
        }

        return true;
    }

    private void Problem(YNode node, string message) => _problems.Add(new DefinitionProblem(node.Mark, message));

    /// <summary>Typed reads of one check's matchers; a wrong type is a problem and reads as absent.</summary>
    private sealed class Reader(SpecParser parser, YMapping map)
    {
        private YNode? Get(string key) => map.Get(key) is { } n && ReferenceEquals(map.Find(key)!.Value, n) ? n : null;

        private YScalar? Scalar(string key, string expected)
        {
            switch (Get(key))
            {
                case null:
                    return null;
                case YScalar { IsNull: false } s:
                    return s;
                case YScalar n:
                    parser.Problem(n, $"`{key}` has no value; expected {expected}");
                    return null;
                case var other:
                    parser.Problem(other, $"`{key}` expects {expected}, found {other.KindName}");
                    return null;
            }
        }

        public bool? Bool(string key)
        {
            if (Scalar(key, "true or false") is not { } s)
            {
                return null;
            }

            if (s.IsPlain && s.Value is "true" or "false")
            {
                return s.Value == "true";
            }

            parser.Problem(s, $"`{key}` expects true or false, found `{s.Value}`");
            return null;
        }

        public long? Int(string key, long min, long max)
        {
            var expected = $"a whole number from {min} to {max}";
            if (Scalar(key, expected) is not { } s)
            {
                return null;
            }

            if (s.IsPlain && long.TryParse(s.Value, NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v >= min && v <= max)
            {
                return v;
            }

            parser.Problem(s, $"`{key}` expects {expected}, found `{s.Value}`");
            return null;
        }

        public TimeSpan? Seconds(string key)
        {
            const string expected = "a number of seconds from 0.001 to 3600";
            if (Scalar(key, expected) is not { } s)
            {
                return null;
            }

            if (s.IsPlain && double.TryParse(s.Value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var v) && v >= 0.001 && v <= 3600)
            {
                return TimeSpan.FromMilliseconds(Math.Round(v * 1000));
            }

            parser.Problem(s, $"`{key}` expects {expected}, found `{s.Value}`");
            return null;
        }

        public string? String(string key) => Scalar(key, "a string")?.Value;

        public string? OneOf(string key, string[] values)
        {
            var expected = string.Join(", ", values);
            if (Scalar(key, $"one of {expected}") is not { } s)
            {
                return null;
            }

            if (values.Contains(s.Value))
            {
                return s.Value;
            }

            parser.Problem(s, $"`{key}` must be one of {expected}, found `{s.Value}`");
            return null;
        }

        public int? Mode(string key)
        {
            if (Scalar(key, "an octal mode such as \"0644\"") is not { } s)
            {
                return null;
            }

            if (DefinitionSyntax.OctalMode().IsMatch(s.Value))
            {
                return DefinitionSyntax.ParseOctal(s.Value);
            }

            parser.Problem(s, $"`{key}` expects an octal mode such as \"0644\", found `{s.Value}`");
            return null;
        }

        public string? Account(string key)
        {
            if (Scalar(key, "a name or a numeric id") is not { } s)
            {
                return null;
            }

            if (AccountName().IsMatch(s.Value))
            {
                return s.Value;
            }

            parser.Problem(s, $"`{key}` expects a name or a numeric id, found `{s.Value}`");
            return null;
        }

        public string? Sha256(string key)
        {
            if (Scalar(key, "64 hex digits") is not { } s)
            {
                return null;
            }

            if (HexSha256().IsMatch(s.Value))
            {
                return s.Value.ToLowerInvariant();
            }

            parser.Problem(s, $"`{key}` expects 64 hex digits, found `{s.Value}`");
            return null;
        }

        public string? Regex(string key)
        {
            if (Scalar(key, "a regular expression") is not { } s)
            {
                return null;
            }

            try
            {
                _ = new Regex(s.Value, RegexOptions.Multiline | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
                return s.Value;
            }
            catch (ArgumentException e)
            {
                parser.Problem(s, $"`{key}` is not a valid regular expression: {e.Message}");
                return null;
            }
        }

        /// <summary>A string or a list of strings.</summary>
        public IReadOnlyList<string> Strings(string key)
        {
            switch (Get(key))
            {
                case null:
                    return [];
                case YScalar { IsNull: false } s:
                    return [s.Value];
                case YSequence list:
                    var items = new List<string>();
                    foreach (var item in list.Items)
                    {
                        if (item is YScalar { IsNull: false } i)
                        {
                            items.Add(i.Value);
                        }
                        else
                        {
                            parser.Problem(item, $"an item of `{key}` expects a string, found {item.KindName}");
                        }
                    }

                    return items;
                case var other:
                    parser.Problem(other, $"`{key}` expects a string or a list of strings, found {other.KindName}");
                    return [];
            }
        }

        public IReadOnlyList<KeyValuePair<string, string>> Headers(string key)
        {
            switch (Get(key))
            {
                case null:
                    return [];
                case YMapping m:
                    var result = new List<KeyValuePair<string, string>>();
                    foreach (var e in m.Entries)
                    {
                        if (!parser.UsableKey(e, m, $"in `{key}`"))
                        {
                            continue;
                        }

                        if (!HeaderName().IsMatch(e.Name!))
                        {
                            parser.Problem(e.Key, $"`{e.Name}` is not an HTTP header name");
                        }
                        else if (e.Value is YScalar { IsNull: false } v)
                        {
                            result.Add(KeyValuePair.Create(e.Name!, v.Value));
                        }
                        else
                        {
                            parser.Problem(e.Value, $"header `{e.Name}` expects a string its value contains, found {e.Value.KindName}");
                        }
                    }

                    return [.. result.OrderBy(h => h.Key, StringComparer.OrdinalIgnoreCase).ThenBy(h => h.Key, StringComparer.Ordinal)];
                case var other:
                    parser.Problem(other, $"`{key}` expects a map of header name to a string its value contains, found {other.KindName}");
                    return [];
            }
        }
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9+.-]+$")]
    private static partial Regex PackageName();

    [GeneratedRegex(@"^[^\s:/]+$")]
    private static partial Regex AccountName();

    [GeneratedRegex("^(tcp|udp):([0-9]{1,5})$")]
    private static partial Regex PortSubject();

    [GeneratedRegex(@"^[A-Za-z0-9:_.@\\-]+$")]
    private static partial Regex UnitName();

    [GeneratedRegex("^[0-9a-fA-F]{64}$")]
    private static partial Regex HexSha256();

    [GeneratedRegex("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")]
    private static partial Regex HeaderName();
}
