namespace Kiln.Build.Minimize;

/// <summary>One <c>minimize: profiles</c> entry: the non-directories it removes (minus its exceptions) and the trees
/// whose directories go too once empty. docs/kiln-yaml.md lists the same sets; a test holds the two together.</summary>
public sealed record Profile(string Name, IReadOnlyList<string> Remove, IReadOnlyList<string> Except, IReadOnlyList<string> Pruned)
{
    internal IReadOnlyList<PathGlob> RemoveGlobs { get; } = [.. Remove.Select(r => new PathGlob(r, prefix: false))];
    internal IReadOnlyList<PathGlob> ExceptGlobs { get; } = [.. Except.Select(r => new PathGlob(r, prefix: false))];
}

public static class Profiles
{
    private static readonly string[] DocTrees = ["/usr/share/doc", "/usr/share/info", "/usr/share/lintian", "/usr/share/gtk-doc", "/usr/share/help"];

    public static readonly IReadOnlyList<Profile> All =
    [
        new("docs", [.. DocTrees.Select(t => t + "/**")], ["/usr/share/doc/*/copyright"], DocTrees),
        new("man", ["/usr/share/man/**", "/usr/local/share/man/**"], [], ["/usr/share/man"]),
        // C.utf8 lives in /usr/lib/locale, outside these trees: LANG=C.UTF-8 keeps working.
        new("locales", ["/usr/share/locale/**", "/usr/share/i18n/**"], ["/usr/share/locale/locale.alias"], ["/usr/share/locale", "/usr/share/i18n"]),
        new("apt-lists", ["/var/lib/apt/lists/**", "/var/cache/apt/*.bin"], ["/var/lib/apt/lists/lock"], []),
        // debconf keeps its answers under /var/cache; later package installs read them.
        new("caches", ["/var/cache/**", "/root/.cache/**", "/tmp/**", "/var/tmp/**"], ["/var/cache/debconf/**"], []),
        new("logs", ["/var/log/**"], [], []),
    ];

    public static Profile Get(string name) => All.FirstOrDefault(p => p.Name == name)
        ?? throw new ArgumentException($"no minimize profile named {name}", nameof(name));

    /// <summary>Whether one of <paramref name="profiles"/> removes the non-directory at <paramref name="path"/>.</summary>
    public static bool Removes(IEnumerable<Profile> profiles, string path) =>
        profiles.Any(p => PathGlob.Any(p.RemoveGlobs, path) && !PathGlob.Any(p.ExceptGlobs, path));

    /// <summary>Whether <paramref name="dir"/> lies strictly under a pruned tree of one of the profiles (so it goes when empty).</summary>
    public static bool Prunes(IEnumerable<Profile> profiles, string dir) =>
        profiles.Any(p => p.Pruned.Any(t => dir.StartsWith(t + "/", StringComparison.Ordinal)));
}
