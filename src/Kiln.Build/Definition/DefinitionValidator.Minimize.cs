namespace Kiln.Build.Definition;

internal sealed partial class DefinitionValidator
{
    /// <summary><c>minimize:</c> a map of <c>profiles</c>, <c>from-tests</c> and <c>keep</c>, asking for at least one
    /// of profiles and from-tests; from-tests needs the image's <c>test:</c>.</summary>
    private void CheckMinimize(YNode node, string image, bool hasTest)
    {
        if (node is not YMapping map)
        {
            Problem(node, $"`minimize` expects a map with `profiles`, `from-tests`, `keep`; found {node.KindName}");
            return;
        }
        CheckKeys(map, "in `minimize`", DefinitionSyntax.MinimizeKeys);
        bool any = false;
        if (map.Get("profiles") is { } profiles)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var name in StringOrList(profiles, "profiles", "a list of profile names"))
            {
                any = true;
                if (!DefinitionSyntax.MinimizeProfiles.Contains(name.Value))
                {
                    var near = NearestName.Find(name.Value, DefinitionSyntax.MinimizeProfiles);
                    Problem(name, $"unknown profile `{name.Value}` (expected {string.Join(", ", DefinitionSyntax.MinimizeProfiles)})"
                        + (near is null ? "" : $"; did you mean `{near}`?"));
                }
                else if (!seen.Add(name.Value))
                {
                    Problem(name, $"profile `{name.Value}` is listed twice");
                }
            }
        }
        if (map.Get("from-tests") is { } fromTests && ExpectString(fromTests, "from-tests", "true or false") is { } flag)
        {
            if (flag.Value is not ("true" or "false"))
            {
                Problem(flag, $"`from-tests` must be true or false, found `{flag.Value}`");
            }
            else if (flag.Value == "true")
            {
                any = true;
                if (!hasTest)
                {
                    Problem(flag, $"`from-tests: true` keeps what the tests of image `{image}` touch, but it has no `test:`");
                }
            }
        }
        if (map.Get("keep") is { } keep)
        {
            foreach (var path in StringOrList(keep, "keep", "a list of absolute paths or globs"))
            {
                if (!DefinitionSyntax.IsAbsoluteImagePath(path.Value))
                {
                    Problem(path, $"`keep` expects absolute paths or globs without '..', found `{path.Value}`");
                }
            }
        }
        if (!any)
        {
            Problem(map, $"`minimize` of image `{image}` removes nothing: give `profiles` or `from-tests: true`");
        }
    }
}
