namespace Kiln.Build.Minimize;

/// <summary>Which package installed a path, from dpkg's <c>/var/lib/dpkg/info/*.list</c> in the image (what
/// <c>dpkg -S</c> reads). A path reached through the merged-/usr links (<c>/bin</c> → <c>usr/bin</c>) is found
/// under either name.</summary>
public sealed class PackageOwners
{
    public const string None = "(none)";
    private static readonly string[] MergedDirs = ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];
    private readonly Dictionary<string, string> _owners = new(StringComparer.Ordinal);

    public PackageOwners(ImageTree tree)
    {
        var merged = MergedDirs.Where(d => tree.Lookup(d) is { Status.IsSymlink: true }).ToList();
        foreach (var name in tree.List("/var/lib/dpkg/info").Where(n => n.EndsWith(".list", StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            if (tree.Lookup("/var/lib/dpkg/info/" + name) is not { Status.IsRegularFile: true } list)
            {
                continue;
            }
            var package = name[..^".list".Length];
            int colon = package.IndexOf(':');
            package = colon > 0 ? package[..colon] : package;
            foreach (var line in File.ReadLines(list.HostPath))
            {
                if (line is "/." or "")
                {
                    continue;
                }
                _owners.TryAdd(line, package);
                if (merged.FirstOrDefault(d => line.StartsWith(d + "/", StringComparison.Ordinal)) is not null)
                {
                    _owners.TryAdd("/usr" + line, package);
                }
            }
        }
    }

    public string Owner(string path) => _owners.TryGetValue(path, out var p) ? p : None;
}
