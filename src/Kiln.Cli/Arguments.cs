namespace Kiln.Cli;

/// <summary>A small, strict argument parser: known flags and options per command, positionals in order.</summary>
public sealed class Arguments
{
    private readonly Dictionary<string, List<string>> _options = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);

    public IReadOnlyList<string> Positionals { get; }

    private Arguments(List<string> positionals) => Positionals = positionals;

    /// <param name="flags">Long names of boolean flags, e.g. "--json".</param>
    /// <param name="options">Long (and short) names of options that take a value, e.g. "--tag", "-t".</param>
    /// <param name="aliases">Short name to long name.</param>
    public static Arguments Parse(IReadOnlyList<string> args, string command, IEnumerable<string> flags, IEnumerable<string> options, IReadOnlyDictionary<string, string>? aliases = null)
    {
        var flagSet = flags.ToHashSet(StringComparer.Ordinal);
        var optionSet = options.ToHashSet(StringComparer.Ordinal);
        var positionals = new List<string>();
        var result = new Arguments(positionals);
        for (int i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (arg == "--")
            {
                positionals.AddRange(args.Skip(i + 1));
                break;
            }
            if (arg.Length > 1 && arg[0] == '-')
            {
                string name = arg;
                string? value = null;
                int eq = arg.IndexOf('=');
                if (arg.StartsWith("--", StringComparison.Ordinal) && eq > 0)
                {
                    name = arg[..eq];
                    value = arg[(eq + 1)..];
                }
                if (aliases is not null && aliases.TryGetValue(name, out var longName))
                {
                    name = longName;
                }
                if (flagSet.Contains(name))
                {
                    if (value is not null)
                    {
                        throw new UsageException($"kiln {command}: {name} takes no value");
                    }
                    result._flags.Add(name);
                }
                else if (optionSet.Contains(name))
                {
                    if (value is null)
                    {
                        if (i + 1 >= args.Count)
                        {
                            throw new UsageException($"kiln {command}: {name} needs a value");
                        }
                        value = args[++i];
                    }
                    if (!result._options.TryGetValue(name, out var list))
                    {
                        result._options[name] = list = [];
                    }
                    list.Add(value);
                }
                else
                {
                    throw new UsageException($"kiln {command}: unknown option '{arg}' (see 'kiln {command} --help')");
                }
                continue;
            }
            positionals.Add(arg);
        }
        return result;
    }

    public bool Has(string flag) => _flags.Contains(flag);

    public IReadOnlyList<string> All(string option) => _options.TryGetValue(option, out var l) ? l : [];

    public string? Last(string option) => _options.TryGetValue(option, out var l) ? l[^1] : null;
}
