namespace Kiln.Build.Definition;

/// <summary><c>cache: {from: [...], to: ...}</c>: the registry repositories (HOST[:PORT]/REPO) a build reads cached
/// steps and test results from, in order, and writes them to. The command line's <c>--cache-from</c> come first,
/// its <c>--cache-to</c> replaces <see cref="To"/>.</summary>
public sealed record CacheDefinition
{
    public IReadOnlyList<string> From { get; init; } = [];
    public string? To { get; init; }

    /// <summary>Why <paramref name="text"/> is not a cache reference (a registry repository with no tag or digest), or null.</summary>
    public static string? RepositoryProblem(string text)
    {
        Kiln.Oci.Registry.ImageReference reference;
        try
        {
            reference = Kiln.Oci.Registry.ImageReference.Parse(text);
        }
        catch (Kiln.Oci.Registry.RegistryException e)
        {
            return e.Message;
        }
        return reference.Tag is not null || reference.Digest is not null
            ? $"'{text}' names an image; a cache is a repository: HOST[:PORT]/REPOSITORY, without a tag or digest"
            : null;
    }
}

internal static partial class DefinitionNormaliser
{
    private static CacheDefinition Cache(YMapping cache) => new()
    {
        From = cache.Get("from") switch
        {
            YSequence list => [.. list.Items.Select(i => ((YScalar)i).Value)],
            YScalar { IsNull: false } one => [one.Value],
            _ => [],
        },
        To = cache.Get("to") is YScalar { IsNull: false } to ? to.Value : null,
    };
}

internal sealed partial class DefinitionValidator
{
    private const string CacheReference = "a registry repository, HOST[:PORT]/REPOSITORY";

    private void CheckCache(YNode node)
    {
        if (node is not YMapping cache)
        {
            Problem(node, $"`cache` expects a map with `from` and `to`, found {node.KindName}");
            return;
        }
        CheckKeys(cache, "in `cache`", DefinitionSyntax.CacheKeys);
        if (cache.Get("from") is { } from)
        {
            foreach (var item in StringOrList(from, "from", "a list of " + CacheReference + "s"))
            {
                CheckCacheReference(item);
            }
        }
        if (cache.Get("to") is { } to && ExpectString(to, "to", CacheReference) is { } target)
        {
            CheckCacheReference(target);
        }
    }

    private void CheckCacheReference(YScalar reference)
    {
        if (CacheDefinition.RepositoryProblem(reference.Value) is { } problem)
        {
            Problem(reference, "cache: " + problem);
        }
    }
}
