namespace Kiln.Build.Definition;

internal sealed partial class DefinitionValidator
{
    /// <summary>Reports non-scalar keys, duplicates and (when <paramref name="allowed"/> is given) unknown keys.</summary>
    private void CheckKeys(YMapping map, string where, IReadOnlyCollection<string>? allowed, Func<string, string?>? hint = null)
    {
        foreach (var entry in map.Entries)
        {
            if (!CheckKey(entry, map, where, allowed) || allowed is null || allowed.Contains(entry.Name!))
            {
                continue;
            }

            var extra = hint?.Invoke(entry.Name!) is { } h ? $"; {h}" : NearestName.Hint(entry.Name!, allowed);
            Problem(entry.Key, $"unknown key `{entry.Name}` {where} (expected {string.Join(", ", allowed)}){extra}");
        }
    }

    /// <summary>Reports a non-scalar or duplicate key; true when the key is a usable first occurrence.</summary>
    private bool CheckKey(YEntry entry, YMapping map, string where, IReadOnlyCollection<string>? allowed)
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

    /// <summary>A non-null scalar, else a problem saying what was expected.</summary>
    private YScalar? ExpectString(YNode node, string key, string expected)
    {
        switch (node)
        {
            case YScalar { IsNull: false } scalar:
                return scalar;
            case YScalar:
                Problem(node, $"`{key}` has no value; expected {expected}");
                return null;
            default:
                Problem(node, $"`{key}` expects {expected}, found {node.KindName}");
                return null;
        }
    }

    private YScalar? RequiredString(YMapping map, string key, string where)
    {
        if (map.Get(key) is { } node)
        {
            return ExpectString(node, key, "a string");
        }

        Problem(map, $"missing `{key}` {where}");
        return null;
    }

    private YScalar? OptionalString(YMapping map, string key) =>
        map.Get(key) is { } node ? ExpectString(node, key, "a string") : null;

    /// <summary>A single string or a list of strings; reports anything else and returns the good items.</summary>
    private List<YScalar> StringOrList(YNode node, string key, string expected, bool allowNull = false)
    {
        switch (node)
        {
            case YScalar { IsNull: false } scalar:
                return [scalar];
            case YScalar when allowNull:
                return [];
            case YScalar:
                Problem(node, $"`{key}` has no value; expected {expected}");
                return [];
            case YSequence list:
                var items = new List<YScalar>();
                foreach (var item in list.Items)
                {
                    if (item is YScalar { IsNull: false } s)
                    {
                        items.Add(s);
                    }
                    else
                    {
                        Problem(item, $"an item of `{key}` expects a string, found {item.KindName}");
                    }
                }

                return items;
            default:
                Problem(node, $"`{key}` expects {expected}, found {node.KindName}");
                return [];
        }
    }
}
