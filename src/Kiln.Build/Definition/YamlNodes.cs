using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace Kiln.Build.Definition;

/// <summary>A YAML node with its position; our own tree so that duplicate keys survive parsing
/// and are reported by validation together with every other problem.</summary>
internal abstract record YNode(SourceMark Mark)
{
    public abstract string KindName { get; }
}

internal sealed record YScalar(SourceMark Mark, string Value, bool IsPlain) : YNode(Mark)
{
    /// <summary>An empty plain scalar, <c>~</c> or <c>null</c>: YAML's null, i.e. "no value written".</summary>
    public bool IsNull => IsPlain && (Value.Length == 0 || Value is "~" or "null" or "Null" or "NULL");

    public override string KindName => IsNull ? "nothing" : "a string";
}

internal sealed record YSequence(SourceMark Mark, IReadOnlyList<YNode> Items) : YNode(Mark)
{
    public override string KindName => "a list";
}

internal sealed record YEntry(YNode Key, YNode Value)
{
    /// <summary>The key's text, or null when the key is not a scalar.</summary>
    public string? Name => Key is YScalar s ? s.Value : null;
}

internal sealed record YMapping(SourceMark Mark, IReadOnlyList<YEntry> Entries) : YNode(Mark)
{
    public override string KindName => "a map";

    /// <summary>The first entry with this key (duplicates are reported by validation).</summary>
    public YEntry? Find(string key) => Entries.FirstOrDefault(e => e.Name == key);

    public YNode? Get(string key) => Find(key)?.Value;
}

/// <summary>Builds a <see cref="YNode"/> tree from YamlDotNet's parser events.</summary>
internal static class YamlDocumentParser
{
    /// <summary>Parses the first document; null when the stream holds none.</summary>
    /// <exception cref="DefinitionException">on a YAML syntax error, at the position YamlDotNet reports.</exception>
    public static YNode? Parse(string file, TextReader text)
    {
        try
        {
            var parser = new Parser(text);
            parser.Consume<StreamStart>();
            if (parser.TryConsume<StreamEnd>(out _))
            {
                return null;
            }

            parser.Consume<DocumentStart>();
            var anchors = new Dictionary<string, YNode>(StringComparer.Ordinal);
            var root = ReadNode(file, parser, anchors);
            parser.Consume<DocumentEnd>();
            if (!parser.TryConsume<StreamEnd>(out _))
            {
                var next = parser.Current!;
                throw DefinitionException.At(ToMark(file, next.Start),
                    "kiln.yaml holds more than one YAML document; expected exactly one");
            }

            return root;
        }
        catch (YamlException e)
        {
            var message = e.InnerException is null || e.Message.Contains(e.InnerException.Message, StringComparison.Ordinal)
                ? e.Message
                : $"{e.Message}: {e.InnerException.Message}";
            throw new DefinitionException([new DefinitionProblem(ToMark(file, e.Start), $"YAML syntax error: {StripMarkPrefix(message)}")], e);
        }
    }

    private static YNode ReadNode(string file, IParser parser, Dictionary<string, YNode> anchors)
    {
        var current = parser.Current ?? throw new YamlException("unexpected end of the YAML stream");
        var mark = ToMark(file, current.Start);
        YNode node;
        string? anchor = null;
        switch (current)
        {
            case AnchorAlias alias:
                parser.MoveNext();
                if (!anchors.TryGetValue(alias.Value.Value, out var target))
                {
                    throw new YamlException(current.Start, current.End, $"unknown alias *{alias.Value.Value}");
                }

                return target;
            case Scalar scalar:
                parser.MoveNext();
                anchor = scalar.Anchor.IsEmpty ? null : scalar.Anchor.Value;
                node = new YScalar(mark, scalar.Value, scalar.Style == ScalarStyle.Plain);
                break;
            case SequenceStart start:
                parser.MoveNext();
                anchor = start.Anchor.IsEmpty ? null : start.Anchor.Value;
                var items = new List<YNode>();
                while (!parser.TryConsume<SequenceEnd>(out _))
                {
                    items.Add(ReadNode(file, parser, anchors));
                }

                node = new YSequence(mark, items);
                break;
            case MappingStart start:
                parser.MoveNext();
                anchor = start.Anchor.IsEmpty ? null : start.Anchor.Value;
                var entries = new List<YEntry>();
                while (!parser.TryConsume<MappingEnd>(out _))
                {
                    var key = ReadNode(file, parser, anchors);
                    var value = ReadNode(file, parser, anchors);
                    entries.Add(new YEntry(key, value));
                }

                node = new YMapping(mark, entries);
                break;
            default:
                throw new YamlException(current.Start, current.End, $"unexpected {current.GetType().Name}");
        }

        if (anchor is not null)
        {
            anchors[anchor] = node;
        }

        return node;
    }

    // YamlDotNet's Mark is 1-based in both line and column.
    private static SourceMark ToMark(string file, Mark mark) => new(file, (int)mark.Line, (int)mark.Column);

    private static string StripMarkPrefix(string message)
    {
        // YamlDotNet prefixes messages with "(Line: 3, Col: 5, Idx: 20) - (Line: ...): "; we carry the mark separately.
        var i = message.IndexOf("): ", StringComparison.Ordinal);
        return message.StartsWith("(Line:", StringComparison.Ordinal) && i >= 0 ? message[(i + 3)..] : message;
    }
}
