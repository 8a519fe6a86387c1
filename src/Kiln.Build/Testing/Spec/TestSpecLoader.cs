using System.Globalization;
using System.Text.Json;
using Kiln.Build.Definition;
using Kiln.Oci;

namespace Kiln.Build.Testing.Spec;

/// <summary>Reads test specs: from an image's <c>test:</c> (a file of the build context or an inline map) or from
/// text. Every problem of every spec is collected and thrown as one <see cref="DefinitionException"/>.</summary>
public static class TestSpecLoader
{
    /// <summary>The spec of every image of <paramref name="file"/> that has one, by image name.</summary>
    public static IReadOnlyDictionary<string, TestSpec> LoadAll(KilnFile file)
    {
        var problems = new List<DefinitionProblem>();
        var specs = new Dictionary<string, TestSpec>(StringComparer.Ordinal);
        foreach (var image in file.Images)
        {
            if (image.Test is { } source && Load(source, image.Boot, problems) is { } spec)
            {
                specs[image.Name] = spec;
            }
        }

        if (problems.Count > 0)
        {
            throw new DefinitionException(Sorted(problems));
        }

        return specs;
    }

    public static TestSpec Load(TestSource source, BootMode boot)
    {
        var problems = new List<DefinitionProblem>();
        var spec = Load(source, boot, problems);
        return problems.Count > 0 ? throw new DefinitionException(Sorted(problems)) : spec!;
    }

    /// <summary>Parses spec text; <paramref name="file"/> names it in problems.</summary>
    public static TestSpec Parse(string file, TextReader text, BootMode boot = BootMode.Process)
    {
        var problems = new List<DefinitionProblem>();
        var root = YamlDocumentParser.Parse(file, text);
        var checks = root is null ? [] : SpecParser.Parse(root, boot, problems);
        return problems.Count > 0 ? throw new DefinitionException(Sorted(problems)) : Build(checks);
    }

    private static TestSpec? Load(TestSource source, BootMode boot, List<DefinitionProblem> problems)
    {
        YNode? root;
        if (source.Inline is { } inline)
        {
            root = inline;
        }
        else
        {
            var path = source.File!;
            try
            {
                using var reader = new StreamReader(path);
                root = YamlDocumentParser.Parse(path, reader);
            }
            catch (DefinitionException e)
            {
                problems.AddRange(e.Problems);
                return null;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                problems.Add(new DefinitionProblem(source.Mark, $"cannot read the test spec {path}: {e.Message}"));
                return null;
            }
        }

        int before = problems.Count;
        var checks = root is null ? [] : SpecParser.Parse(root, boot, problems);
        return problems.Count == before ? Build(checks) : null;
    }

    private static List<DefinitionProblem> Sorted(List<DefinitionProblem> problems) =>
        [.. problems.OrderBy(p => p.Mark.File, StringComparer.Ordinal).ThenBy(p => p.Mark.Line).ThenBy(p => p.Mark.Column)];

    private static TestSpec Build(List<Check> checks)
    {
        var sorted = checks
            .OrderBy(c => Array.IndexOf(SpecParser.Sections, c.Section))
            .ThenBy(c => c.Subject, StringComparer.Ordinal)
            .ToList();
        var canonical = Canonical(sorted);
        return new TestSpec
        {
            Checks = sorted,
            Canonical = canonical,
            Digest = Digest.Compute(System.Text.Encoding.UTF8.GetBytes(canonical)),
        };
    }

    /// <summary>Compact JSON of every check with its defaults filled in: equal specs give equal text whatever
    /// their layout, order, quoting or file.</summary>
    private static string Canonical(List<Check> checks)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartArray();
            foreach (var c in checks)
            {
                w.WriteStartObject();
                w.WriteString("section", c.Section);
                w.WriteString("subject", c.Subject);
                w.WriteString("phase", c.Phase == TestPhase.Boot ? "boot" : "bake");
                switch (c)
                {
                    case FileCheck f:
                        w.WriteBoolean("exists", f.Exists);
                        Opt(w, "type", f.Type?.ToString().ToLowerInvariant());
                        Opt(w, "mode", f.Mode is { } m ? Convert.ToString(m, 8).PadLeft(4, '0') : null);
                        Opt(w, "owner", f.Owner);
                        Opt(w, "group", f.Group);
                        Opt(w, "link-target", f.LinkTarget);
                        List(w, "contains", f.Contains);
                        Opt(w, "sha256", f.Sha256);
                        break;
                    case PackageCheck p:
                        w.WriteBoolean("installed", p.Installed);
                        Opt(w, "version", p.Version);
                        break;
                    case UserCheck u:
                        w.WriteBoolean("exists", u.Exists);
                        Opt(w, "uid", u.Uid);
                        Opt(w, "gid", u.Gid);
                        Opt(w, "home", u.Home);
                        Opt(w, "shell", u.Shell);
                        break;
                    case GroupCheck g:
                        w.WriteBoolean("exists", g.Exists);
                        Opt(w, "gid", g.Gid);
                        break;
                    case CommandCheck cmd:
                        w.WriteNumber("exit-status", cmd.ExitStatus);
                        List(w, "stdout", cmd.Stdout);
                        List(w, "stderr", cmd.Stderr);
                        Opt(w, "stdout-matches", cmd.StdoutMatches);
                        Opt(w, "stderr-matches", cmd.StderrMatches);
                        w.WriteNumber("timeout-ms", (long)cmd.Timeout.TotalMilliseconds);
                        break;
                    case PortCheck port:
                        w.WriteBoolean("listening", port.Listening);
                        break;
                    case HttpCheck h:
                        w.WriteNumber("status", h.Status);
                        List(w, "body", h.Body);
                        w.WriteStartArray("headers");
                        foreach (var (k, v) in h.Headers)
                        {
                            w.WriteStringValue(k + ": " + v);
                        }

                        w.WriteEndArray();
                        w.WriteNumber("timeout-ms", (long)h.Timeout.TotalMilliseconds);
                        break;
                    case ServiceCheck s:
                        Opt(w, "enabled", s.Enabled?.ToString(CultureInfo.InvariantCulture));
                        Opt(w, "active", s.Active?.ToString(CultureInfo.InvariantCulture));
                        break;
                }

                w.WriteEndObject();
            }

            w.WriteEndArray();
        }

        return System.Text.Encoding.UTF8.GetString(ms.ToArray());
    }

    private static void Opt(Utf8JsonWriter w, string name, string? value)
    {
        if (value is not null)
        {
            w.WriteString(name, value);
        }
    }

    private static void Opt(Utf8JsonWriter w, string name, long? value)
    {
        if (value is { } v)
        {
            w.WriteNumber(name, v);
        }
    }

    private static void List(Utf8JsonWriter w, string name, IReadOnlyList<string> items)
    {
        w.WriteStartArray(name);
        foreach (var i in items)
        {
            w.WriteStringValue(i);
        }

        w.WriteEndArray();
    }
}
