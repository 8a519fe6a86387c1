namespace Kiln.Build.Definition;

/// <summary>A promotion channel of <c>channels:</c>: the test phases whose passing results an image's digest needs
/// before <c>kiln promote</c> records it, and whether a person must approve it (<c>--approve</c>).</summary>
public sealed record ChannelDefinition
{
    public required string Name { get; init; }
    public required SourceMark Mark { get; init; }

    /// <summary>Phase names (<c>bake</c>, <c>boot</c>, <c>vm</c>), sorted in that order, without repeats.</summary>
    public required IReadOnlyList<string> Require { get; init; }

    public bool Approve { get; init; }

    /// <summary>The phases a channel may require, in the order they run.</summary>
    public static readonly string[] Phases = ["bake", "boot", "vm"];
}

internal static partial class DefinitionNormaliser
{
    private static List<ChannelDefinition> Channels(YMapping channels) => [.. channels.Entries.Select(e =>
    {
        var (require, approve) = e.Value switch
        {
            YSequence list => (list, (YNode?)null),
            YMapping map => ((YSequence)map.Get("require")!, map.Get("approve")),
            _ => throw new InvalidOperationException("validated"),
        };
        var phases = require.Items.Select(i => ((YScalar)i).Value).ToHashSet(StringComparer.Ordinal);
        return new ChannelDefinition
        {
            Name = e.Name!,
            Mark = ((YScalar)e.Key).Mark,
            Require = [.. ChannelDefinition.Phases.Where(phases.Contains)],
            Approve = approve is YScalar { Value: "true" },
        };
    })];
}

internal sealed partial class DefinitionValidator
{
    private const string ChannelForm = "a list of phases (bake, boot, vm) or a map with `require` and `approve`";

    private void CheckChannels(YNode node)
    {
        if (node is not YMapping channels)
        {
            Problem(node, $"`channels` expects a map of channel name to {ChannelForm}, found {node.KindName}");
            return;
        }
        CheckKeys(channels, "in `channels`", null);
        foreach (var entry in channels.Entries)
        {
            if (entry.Name is not { } name || !ReferenceEquals(channels.Find(name), entry))
            {
                continue;
            }
            if (!DefinitionSyntax.ChannelName().IsMatch(name))
            {
                Problem(entry.Key, $"channel name `{name}` is not valid: it becomes a registry tag, so use letters, digits, '.', '_' and '-' (at most 128), starting with a letter, digit or '_'");
            }
            switch (entry.Value)
            {
                case YSequence list:
                    CheckPhases(list, name);
                    break;
                case YMapping map:
                    CheckKeys(map, $"in channel `{name}`", DefinitionSyntax.ChannelKeys);
                    if (map.Get("require") is not { } require)
                    {
                        Problem(map, $"missing `require` in channel `{name}` (the phases whose passing results it needs)");
                    }
                    else if (require is YSequence phases)
                    {
                        CheckPhases(phases, name);
                    }
                    else
                    {
                        Problem(require, $"`require` expects a list of phases (bake, boot, vm), found {require.KindName}");
                    }
                    if (map.Get("approve") is { } approve && approve is not YScalar { Value: "true" or "false" })
                    {
                        Problem(approve, $"`approve` expects true or false, found {(approve is YScalar { IsNull: false } s ? $"`{s.Value}`" : approve.KindName)}");
                    }
                    break;
                default:
                    Problem(entry.Value, $"channel `{name}` expects {ChannelForm}, found {entry.Value.KindName}");
                    break;
            }
        }
    }

    private void CheckPhases(YSequence list, string channel)
    {
        if (list.Items.Count == 0)
        {
            Problem(list, $"channel `{channel}` requires no phase; name at least one of bake, boot, vm");
        }
        foreach (var item in list.Items)
        {
            if (item is not YScalar { IsNull: false } phase)
            {
                Problem(item, $"a phase of channel `{channel}` expects a string, found {item.KindName}");
            }
            else if (!ChannelDefinition.Phases.Contains(phase.Value))
            {
                Problem(item, $"unknown phase `{phase.Value}` in channel `{channel}` (expected bake, boot, vm){NearestName.Hint(phase.Value, ChannelDefinition.Phases)}");
            }
        }
    }
}
