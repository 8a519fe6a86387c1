using Kiln.Build.Layers;

namespace Kiln.Build.Execution;

/// <summary>debconf's apt hook (<c>DPkg::Pre-Install-Pkgs</c> in /etc/apt/apt.conf.d/70debconf) runs dpkg-preconfigure,
/// a Perl program that without apt-utils' apt-extracttemplates only loads debconf, prints "delaying package
/// configuration, since apt-utils is not installed" and exits: the packages' questions are then asked (answered, by the
/// noninteractive frontend) when they are configured, as they would be anyway. It took 65-70 ms of every package step
/// on a minbase image. A package step leaves it out (<c>apt-get -c</c> with a file that clears the hook list) only when
/// that is all it could do: no apt-extracttemplates on the step's PATH, no cdebconf in its stead, and debconf's line the
/// only Pre-Install-Pkgs hook of the image's apt configuration, which includes no other files and moves no dirs.</summary>
internal static class DebconfPreconfigure
{
    /// <summary>The hook as debconf installs it.</summary>
    public const string Hook = "DPkg::Pre-Install-Pkgs {\"/usr/sbin/dpkg-preconfigure --apt || true\";};";

    /// <summary>The apt configuration a package step then adds (a file in the sandbox's skeleton layer).</summary>
    public const string ClearFile = ".kiln-apt.conf";

    public const string ClearText = "// written by kiln: debconf's preconfigure hook has nothing to do without apt-utils\n#clear DPkg::Pre-Install-Pkgs;\n";

    /// <summary>True when the hook cannot do more than print its message (see the type's summary).</summary>
    public static bool IsNoOp(IReadOnlyList<string> lowers, IReadOnlyList<KeyValuePair<string, string>> environment)
    {
        string? Env(string name) => environment.LastOrDefault(e => e.Key == name).Value;
        if (Env("DEBCONF_USE_CDEBCONF") is { Length: > 0 } || Env("APT_CONFIG") is not null)
        {
            return false;
        }
        foreach (var dir in (Env("PATH") ?? "").Split(':'))
        {
            if (!dir.StartsWith('/') || SafePath.Lookup(lowers, SafePath.Resolve(lowers, dir.TrimEnd('/') + "/apt-extracttemplates")) is not null)
            {
                return false;
            }
        }
        var files = new List<ImageEntry>();
        if (SafePath.Lookup(lowers, SafePath.Resolve(lowers, "/etc/apt/apt.conf")) is { } main)
        {
            files.Add(main);
        }
        var partsDir = SafePath.Resolve(lowers, "/etc/apt/apt.conf.d");
        files.AddRange(SafePath.List(lowers, partsDir));
        int hooks = 0;
        foreach (var file in files)
        {
            if (file.Kind != ImageEntryKind.File)
            {
                return false;
            }
            foreach (var line in File.ReadLines(file.HostPath))
            {
                var text = line.Trim();
                if (text.Contains("Pre-Install-Pkgs", StringComparison.OrdinalIgnoreCase))
                {
                    if (text != Hook)
                    {
                        return false;
                    }
                    hooks++;
                }
                else if (text.StartsWith("#include", StringComparison.OrdinalIgnoreCase) || text.StartsWith("#clear", StringComparison.OrdinalIgnoreCase)
                    || text.Contains("Dir::", StringComparison.OrdinalIgnoreCase)
                    || text.StartsWith("Dir", StringComparison.OrdinalIgnoreCase))
                {
                    return false;
                }
            }
        }
        return hooks == 1;
    }
}
