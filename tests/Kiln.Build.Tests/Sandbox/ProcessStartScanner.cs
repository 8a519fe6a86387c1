using System.Text;
using System.Text.RegularExpressions;

namespace Kiln.Build.Tests.Sandbox;

/// <summary>Finds, in C# source, the places that start a host program named by a string literal rather than by
/// <c>HostPrograms</c>: a literal handed to a process start (ProcessStartInfo, HostCommand.StartInfo, HostTool.RunAsync
/// or CheckAsync, FileName), a literal after a "--" argument (the program a wrapper such as setpriv, unshare or nsenter
/// runs), <c>exec PROGRAM</c> in a shell script, and a catalogued program's name as a literal or as a command line in
/// one. It reads the source as text (comments are not code; strings, verbatim, interpolated and raw, are lexed), so a
/// program reached another way (a name built at run time) is not seen: call sites name programs from HostPrograms.
/// A script that runs in an image or a guest, not on the host, says so with a comment holding <see cref="InImageMarker"/>
/// on its first line or one of the two above it; its literals are then not read as host commands.</summary>
internal static partial class ProcessStartScanner
{
    public sealed record Finding(int Line, string Rule, string Text);

    public const string InImageMarker = "in-image script";

    private sealed record Literal(int Offset, string Text);

    public static IReadOnlyList<Finding> Scan(string source, IReadOnlyCollection<string> catalogued)
    {
        var (code, literals) = Lex(source);
        var findings = new List<Finding>();
        int LineOf(int offset) => source.AsSpan(0, offset).Count('\n') + 1;
        foreach (var (rule, regex) in new[] { ("a literal program started", StartWithLiteral()), ("a literal program after \"--\"", AfterDoubleDash()) })
        {
            foreach (Match m in regex.Matches(code))
            {
                findings.Add(new Finding(LineOf(m.Index), rule, Snippet(code, m.Index)));
            }
        }
        // Only names looked up on PATH: "/bin/sh" is also the image's shell in every step, and the rules above catch it
        // where a host program is started.
        var names = catalogued.Where(n => !n.StartsWith('/')).ToHashSet(StringComparer.Ordinal);
        var baseNames = catalogued.Select(n => n[(n.LastIndexOf('/') + 1)..]).Where(n => n.Length > 0).ToHashSet(StringComparer.Ordinal);
        var lines = source.Split('\n');
        foreach (var literal in literals)
        {
            var text = literal.Text;
            int line = LineOf(literal.Offset);
            if (Enumerable.Range(line - 2, 3).Any(l => l >= 1 && lines[l - 1].Contains("//", StringComparison.Ordinal) &&
                lines[l - 1].Contains(InImageMarker, StringComparison.Ordinal)))
            {
                continue;
            }
            // A libc function of the same name as a program: [LibraryImport("libc", EntryPoint = "mount")].
            bool entryPoint = EntryPoint().IsMatch(source[Math.Max(0, literal.Offset - 40)..literal.Offset]);
            if (names.Contains(text) && !entryPoint)
            {
                findings.Add(new Finding(line, "a catalogued program's name as a literal", text));
            }
            foreach (Match m in ExecWord().Matches(text))
            {
                findings.Add(new Finding(line, "exec of a literal program in a script", m.Value.Trim()));
            }
            foreach (Match m in CommandWord().Matches(text))
            {
                if (baseNames.Contains(m.Groups["name"].Value))
                {
                    findings.Add(new Finding(line, "a catalogued program's command line in a literal", m.Value.Trim()));
                }
            }
        }
        return findings.OrderBy(f => f.Line).ToList();
    }

    private static string Snippet(string code, int at)
    {
        int end = code.IndexOf('\n', at);
        var line = code[at..(end < 0 ? code.Length : end)].Trim();
        return line.Length > 90 ? line[..90] + "..." : line;
    }

    // The first argument of a process start is a literal; or CheckAsync's second (its first says what it does); or FileName.
    [GeneratedRegex("""(?:\bnew\s+ProcessStartInfo|\bStartInfo|\bHostTool\.RunAsync|\bProcess\.Start)\s*\(\s*\$*@?"|\bHostTool\.CheckAsync\s*\(\s*(?:\$*@?"(?:[^"\\]|\\.)*"|[^,"]+)\s*,\s*\$*@?"|\bFileName\s*=\s*\$*@?\x22""")]
    private static partial Regex StartWithLiteral();

    [GeneratedRegex(@"EntryPoint\s*=\s*$")]
    private static partial Regex EntryPoint();

    [GeneratedRegex("""(?<![\w"])"--"\s*,\s*\$*@?"[^"]""")]
    private static partial Regex AfterDoubleDash();

    // exec WORD, where WORD is a plain name or path (not "$@", a variable or an interpolation hole "{}").
    [GeneratedRegex("""(?:^|[\s;&|(])exec\s+(?!-)[A-Za-z_./][\w.+/-]*""")]
    private static partial Regex ExecWord();

    // NAME -OPTION at a command's start: after the start, a space, or ; & | ( (a script, or a message quoting a command line).
    [GeneratedRegex("""(?:^|[\s;&|(])(?<name>[A-Za-z_][\w.+-]*)\s+-""")]
    private static partial Regex CommandWord();

    /// <summary>The source with its comments blanked (line breaks kept), and every string literal's text; an
    /// interpolation hole's code is lexed too and stands as "{}" in its literal's text.</summary>
    private static (string Code, List<Literal> Literals) Lex(string s)
    {
        var code = new StringBuilder(s);
        var literals = new List<Literal>();
        int i = 0;
        LexCode(s, ref i, code, literals, stopAtBrace: false);
        return (code.ToString(), literals);
    }

    private static void LexCode(string s, ref int i, StringBuilder code, List<Literal> literals, bool stopAtBrace)
    {
        int depth = 0;
        while (i < s.Length)
        {
            char c = s[i];
            if (c == '/' && i + 1 < s.Length && s[i + 1] == '/')
            {
                while (i < s.Length && s[i] != '\n')
                {
                    code[i++] = ' ';
                }
            }
            else if (c == '/' && i + 1 < s.Length && s[i + 1] == '*')
            {
                int end = s.IndexOf("*/", i + 2, StringComparison.Ordinal);
                end = end < 0 ? s.Length : end + 2;
                for (; i < end; i++)
                {
                    if (s[i] != '\n')
                    {
                        code[i] = ' ';
                    }
                }
            }
            else if (c == '\'')
            {
                i += s[i + 1] == '\\' ? 2 : 1;
                i = s.IndexOf('\'', i + 1) + 1;
            }
            else if (c is '"' or '$' or '@' && StartsLiteral(s, i))
            {
                LexLiteral(s, ref i, code, literals);
            }
            else if (stopAtBrace && c == '{')
            {
                depth++;
                i++;
            }
            else if (stopAtBrace && c == '}')
            {
                if (depth-- == 0)
                {
                    return;
                }
                i++;
            }
            else
            {
                i++;
            }
        }
    }

    private static bool StartsLiteral(string s, int i)
    {
        while (i < s.Length && s[i] is '$' or '@')
        {
            i++;
        }
        return i < s.Length && s[i] == '"';
    }

    private static void LexLiteral(string s, ref int i, StringBuilder code, List<Literal> literals)
    {
        int start = i, dollars = 0;
        bool verbatim = false;
        while (s[i] is '$' or '@')
        {
            if (s[i] == '$')
            {
                dollars++;
            }
            else
            {
                verbatim = true;
            }
            i++;
        }
        int quotes = 0;
        while (i + quotes < s.Length && s[i + quotes] == '"')
        {
            quotes++;
        }
        bool raw = quotes >= 3;
        if (!raw)
        {
            quotes = 1;
        }
        i += quotes;
        var text = new StringBuilder();
        int braces = Math.Max(dollars, 1);
        while (i < s.Length)
        {
            if (raw && string.CompareOrdinal(s, i, new string('"', quotes), 0, quotes) == 0)
            {
                i += quotes;
                break;
            }
            char c = s[i];
            if (!raw && c == '"')
            {
                if (verbatim && i + 1 < s.Length && s[i + 1] == '"')
                {
                    text.Append('"');
                    i += 2;
                    continue;
                }
                i++;
                break;
            }
            if (!raw && !verbatim && c == '\\')
            {
                text.Append(s[i + 1] switch { 'n' => '\n', 't' => '\t', _ => s[i + 1] });
                i += 2;
                continue;
            }
            if (dollars > 0 && c == '{')
            {
                int run = 0;
                while (i + run < s.Length && s[i + run] == '{')
                {
                    run++;
                }
                if (!raw && run >= 2)
                {
                    text.Append('{');
                    i += 2;
                    continue;
                }
                if (run >= braces)
                {
                    text.Append(new string('{', run - braces)).Append("{}");
                    i += run;
                    LexCode(s, ref i, code, literals, stopAtBrace: true);
                    i += braces; // the hole's closing braces
                    continue;
                }
            }
            if (dollars == 1 && !raw && c == '}' && i + 1 < s.Length && s[i + 1] == '}')
            {
                text.Append('}');
                i += 2;
                continue;
            }
            text.Append(c);
            i++;
        }
        literals.Add(new Literal(start, text.ToString()));
    }
}
