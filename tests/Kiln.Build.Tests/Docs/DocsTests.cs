using System.Text;
using System.Text.RegularExpressions;
using Kiln.Build.Definition;
using Kiln.Build.Testing.Spec;

namespace Kiln.Build.Tests.Docs;

/// <summary>Keeps the repository's docs honest where that is cheap: docs/kiln-yaml.md lists exactly the keys, step
/// options, formats, sections and matchers the parsers accept, and every link of README.md and docs/*.md leads to a
/// file (and heading) of the repository.</summary>
public sealed partial class DocsTests
{
    private const string Reference = "docs/kiln-yaml.md";

    /// <summary>A heading of docs/kiln-yaml.md and the keys its table must list, one row per key.</summary>
    public static TheoryData<string, string[]> KeyTables()
    {
        var data = new TheoryData<string, string[]>
        {
            { "Top level", DefinitionSyntax.TopLevelKeys },
            { "Image keys", DefinitionSyntax.ImageKeys },
            { "`bootstrap`", DefinitionSyntax.BootstrapKeys },
            { "`boot` modes", DefinitionSyntax.BootModes },
            { "Step kinds", DefinitionSyntax.StepKinds },
            { "Step options", [.. DefinitionSyntax.StepOptions.Keys] },
            { "`secrets`", DefinitionSyntax.SecretKeys },
            { "`config`", DefinitionSyntax.ConfigKeys },
            { "`outputs`", DefinitionSyntax.OutputKeys },
            { "`cache`", DefinitionSyntax.CacheKeys },
            { "Service keys", DefinitionSyntax.ServiceKeys },
            { "`minimize`", DefinitionSyntax.MinimizeKeys },
            { "Profiles", DefinitionSyntax.MinimizeProfiles },
            { "`channels`", DefinitionSyntax.ChannelKeys },
            { "`release`", ReleaseSyntax.TargetKeys },
            { "`canary`", ReleaseSyntax.CanaryKeys },
            { "Output formats", DefinitionSyntax.OutputFormats },
            { "Sections", SpecParser.Sections },
        };
        foreach (var section in SpecParser.Sections)
        {
            data.Add($"`{section}` checks", SpecParser.Matchers[section]);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(KeyTables))]
    public void Reference_table_lists_exactly_what_the_parser_accepts(string heading, string[] accepted)
    {
        var documented = Markdown.Load(Reference).TableRows(heading).Select(r => r.Key).ToList();
        var missing = accepted.Except(documented, StringComparer.Ordinal).ToList();
        var unknown = documented.Except(accepted, StringComparer.Ordinal).ToList();
        Assert.True(missing.Count == 0 && unknown.Count == 0,
            $"{Reference}, table under \"{heading}\": accepted by the parser but not documented: [{string.Join(", ", missing)}]; " +
            $"documented but not accepted: [{string.Join(", ", unknown)}]");
    }

    [Fact]
    public void Each_step_option_is_documented_with_the_step_kind_it_belongs_to()
    {
        var rows = Markdown.Load(Reference).TableRows("Step options").ToDictionary(r => r.Key, r => r.Cells);
        foreach (var (option, kind) in DefinitionSyntax.StepOptions)
        {
            Assert.True(rows.TryGetValue(option, out var cells), $"{Reference}: no row for step option `{option}`");
            Assert.Equal(kind, cells[1]);
        }
    }

    [Fact]
    public void Each_output_format_is_documented_with_its_default_file()
    {
        var rows = Markdown.Load(Reference).TableRows("Output formats").ToDictionary(r => r.Key, r => r.Cells);
        foreach (var format in DefinitionSyntax.OutputFormats)
        {
            Assert.True(rows.TryGetValue(format, out var cells), $"{Reference}: no row for output format `{format}`");
            Assert.Equal($"`{DefinitionSyntax.DefaultOutputPath("NAME", format)}`", cells[1]);
        }
    }

    [Fact]
    public void Every_bootstrap_variant_is_documented()
    {
        var variant = Markdown.Load(Reference).TableRows("`bootstrap`").Single(r => r.Key == "variant");
        var row = string.Join(" | ", variant.Cells);
        Assert.All(DefinitionSyntax.Variants, v => Assert.Contains($"`{v}`", row, StringComparison.Ordinal));
    }

    public static TheoryData<string> Documents()
    {
        var data = new TheoryData<string> { "README.md" };
        foreach (var file in Directory.EnumerateFiles(Path.Combine(RepoRoot, "docs"), "*.md").Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetRelativePath(RepoRoot, file));
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Documents))]
    public void Every_link_leads_to_a_file_or_heading_of_the_repository(string document)
    {
        var doc = Markdown.Load(document);
        var problems = new List<string>();
        foreach (var (line, target) in doc.Links())
        {
            if (target.StartsWith("http://", StringComparison.Ordinal) || target.StartsWith("https://", StringComparison.Ordinal)
                || target.StartsWith("mailto:", StringComparison.Ordinal))
            {
                continue;
            }
            var hash = target.IndexOf('#');
            var path = hash < 0 ? target : target[..hash];
            var anchor = hash < 0 ? null : target[(hash + 1)..];
            var full = path.Length == 0 ? doc.FullPath : Path.GetFullPath(Path.Combine(Path.GetDirectoryName(doc.FullPath)!, Uri.UnescapeDataString(path)));
            if (!IsInsideRepository(full))
            {
                problems.Add($"{document}:{line}: ({target}) leads out of the repository");
            }
            else if (!File.Exists(full) && !Directory.Exists(full))
            {
                problems.Add($"{document}:{line}: ({target}) names no file of the repository");
            }
            else if (anchor is not null && full.EndsWith(".md", StringComparison.Ordinal) && !Markdown.LoadFull(full).Anchors().Contains(anchor))
            {
                problems.Add($"{document}:{line}: ({target}) names no heading of {Path.GetRelativePath(RepoRoot, full)}");
            }
        }
        // A path written as code is not a link, but a reader follows it all the same.
        foreach (var (line, code) in doc.CodeSpans().Where(c => c.Text.StartsWith("../", StringComparison.Ordinal)))
        {
            if (!IsInsideRepository(Path.GetFullPath(Path.Combine(Path.GetDirectoryName(doc.FullPath)!, code))))
            {
                problems.Add($"{document}:{line}: `{code}` names a path outside the repository");
            }
        }
        Assert.True(problems.Count == 0, string.Join(Environment.NewLine, problems));
    }

    private static bool IsInsideRepository(string full) =>
        full == RepoRoot || full.StartsWith(RepoRoot + "/", StringComparison.Ordinal);

    private static string RepoRoot { get; } = FindRepoRoot();

    private static string FindRepoRoot()
    {
        for (var dir = AppContext.BaseDirectory; dir is not null; dir = Path.GetDirectoryName(dir))
        {
            if (File.Exists(Path.Combine(dir, "Kiln.slnx")))
            {
                return Path.TrimEndingDirectorySeparator(dir);
            }
        }
        throw new InvalidOperationException($"no Kiln.slnx above {AppContext.BaseDirectory}");
    }

    /// <summary>Just enough Markdown: headings, tables, links and code spans outside fenced code blocks.</summary>
    private sealed partial class Markdown
    {
        private readonly List<(int Line, string Text)> _lines = [];

        private Markdown(string fullPath)
        {
            FullPath = fullPath;
            bool fenced = false;
            int number = 0;
            foreach (var line in File.ReadLines(fullPath))
            {
                number++;
                if (line.TrimStart().StartsWith("```", StringComparison.Ordinal))
                {
                    fenced = !fenced;
                    continue;
                }
                if (!fenced)
                {
                    _lines.Add((number, line));
                }
            }
        }

        public string FullPath { get; }

        public static Markdown Load(string relativePath) => LoadFull(Path.Combine(RepoRoot, relativePath));

        public static Markdown LoadFull(string fullPath) => new(fullPath);

        private static string? Heading(string line) => HeadingLine().Match(line) is { Success: true } m ? m.Groups[1].Value.Trim() : null;

        /// <summary>The rows of the tables under the one heading <paramref name="heading"/> (up to the next heading), each
        /// with its first cell's code span as the key and its cells with the outer pipes removed.</summary>
        public List<(string Key, string[] Cells)> TableRows(string heading)
        {
            var at = _lines.FindAll(l => Heading(l.Text) == heading);
            Assert.True(at.Count == 1, $"{FullPath}: expected one heading \"{heading}\", found {at.Count}");
            var rows = new List<(string, string[])>();
            foreach (var (_, text) in _lines.SkipWhile(l => l.Line != at[0].Line).Skip(1).TakeWhile(l => Heading(l.Text) is null))
            {
                if (RowKey().Match(text) is { Success: true } m)
                {
                    var cells = text.Trim().Trim('|').Split(" | ").Select(c => c.Trim()).ToArray();
                    rows.Add((m.Groups[1].Value, cells));
                }
            }
            Assert.True(rows.Count > 0, $"{FullPath}: no table rows under \"{heading}\"");
            return rows;
        }

        public IEnumerable<(int Line, string Target)> Links() =>
            _lines.SelectMany(l => Link().Matches(WithoutCode(l.Text)).Select(m => (l.Line, m.Groups[1].Value)));

        public IEnumerable<(int Line, string Text)> CodeSpans() =>
            _lines.SelectMany(l => CodeSpan().Matches(l.Text).Select(m => (l.Line, m.Groups[1].Value)));

        /// <summary>GitHub's anchors: a heading lowercased, its characters other than letters, digits, spaces, '-' and
        /// '_' dropped, spaces made '-'; a repeated one gets -1, -2...</summary>
        public HashSet<string> Anchors()
        {
            var anchors = new HashSet<string>(StringComparer.Ordinal);
            foreach (var heading in _lines.Select(l => Heading(l.Text)).OfType<string>())
            {
                var slug = new StringBuilder();
                foreach (var c in heading.ToLowerInvariant())
                {
                    if (char.IsLetterOrDigit(c) || c is '-' or '_')
                    {
                        slug.Append(c);
                    }
                    else if (c == ' ')
                    {
                        slug.Append('-');
                    }
                }
                var anchor = slug.ToString();
                for (int n = 1; !anchors.Add(anchor); n++)
                {
                    anchor = $"{slug}-{n}";
                }
            }
            return anchors;
        }

        private static string WithoutCode(string line) => CodeSpan().Replace(line, "");

        [GeneratedRegex(@"^#{1,6}\s+(.*)$")]
        private static partial Regex HeadingLine();

        [GeneratedRegex(@"^\s*\|\s*`([^`]+)`\s*\|")]
        private static partial Regex RowKey();

        [GeneratedRegex(@"\]\(([^)\s]+)(?:\s+""[^""]*"")?\)")]
        private static partial Regex Link();

        [GeneratedRegex("`([^`]+)`")]
        private static partial Regex CodeSpan();
    }
}
