using System.Text.RegularExpressions;

namespace Kiln.Build.Definition;

/// <summary>The lexical rules of kiln.yaml, shared by validation and normalisation.</summary>
internal static partial class DefinitionSyntax
{
    /// <summary>The keys kiln.yaml accepts at each place; docs/kiln-yaml.md lists each of them (a test checks it).</summary>
    public static readonly string[] TopLevelKeys = ["images", "cache", "services", "channels", "release"];
    public static readonly string[] ServiceKeys = ["image", "package", "config", "test"];
    public static readonly string[] ChannelKeys = ["require", "approve"];
    public static readonly string[] CacheKeys = ["from", "to"];
    public static readonly string[] ImageKeys = ["bootstrap", "from", "steps", "config", "test", "boot", "outputs", "minimize"];
    public static readonly string[] MinimizeKeys = ["profiles", "from-tests", "keep"];

    /// <summary>The suffix under which a minimized image's full (unminimized) build is kept.</summary>
    public const string FullSuffix = ".full";

    /// <summary>The names of <c>minimize: profiles</c>; their path sets are Kiln.Build.Minimize.Profiles.</summary>
    public static readonly string[] MinimizeProfiles = ["docs", "man", "locales", "apt-lists", "caches", "logs"];
    /// <summary>Output formats and the extension of their default file, <c>out/NAME.EXT</c> beside kiln.yaml.</summary>
    public static readonly (string Format, string Extension)[] Outputs =
    [
        ("oci-archive", ".oci.tar"), ("docker-archive", ".docker.tar"), ("rootfs", ".rootfs.tar"),
        ("raw", ".raw"), ("qcow2", ".qcow2"), ("vagrant", ".box"),
    ];
    public static readonly string[] OutputFormats = [.. Outputs.Select(o => o.Format)];

    public static string OutputExtension(string format) => Outputs.First(o => o.Format == format).Extension;

    /// <summary>Where an output without <c>path:</c> goes, relative to kiln.yaml's folder.</summary>
    public static string DefaultOutputPath(string image, string format) => Path.Combine("out", image + OutputExtension(format));

    public static readonly string[] DiskOutputFormats = ["raw", "qcow2", "vagrant"];
    public static readonly string[] OutputKeys = ["format", "path", "size"];
    public static readonly string[] BootModes = ["process", "systemd"];
    public static readonly string[] BootstrapKeys = ["distro", "suite", "variant", "packages", "mirror"];
    public static readonly string[] StepKinds = ["packages", "run", "copy", "env", "workdir", "user"];
    public static readonly string[] ConfigKeys = ["entrypoint", "cmd", "env", "workdir", "user", "expose", "labels", "stop-signal"];

    /// <summary>Options of a step and the one step kind each belongs to.</summary>
    public static readonly IReadOnlyDictionary<string, string> StepOptions = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["network"] = "run",
        ["cache"] = "run",
        ["secrets"] = "run",
        ["to"] = "copy",
        ["owner"] = "copy",
        ["mode"] = "copy",
    };

    public static readonly string[] SupportedDistros = ["debian"];

    /// <summary>Keys of one entry of a run step's <c>secrets</c>.</summary>
    public static readonly string[] SecretKeys = ["id", "file", "env"];

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    public static partial Regex SecretId();

    public static readonly string[] Variants =
        ["extract", "custom", "essential", "apt", "required", "minbase", "buildd", "important", "debootstrap", "standard"];

    /// <summary>Keys that will exist one day; until then they are unknown keys with a hint.</summary>
    public static string? NotYetSupportedHint(string key) => null;

    [GeneratedRegex("^([0-9]+)([KMGT]i?B?|B)?$", RegexOptions.IgnoreCase)]
    private static partial Regex Size();

    /// <summary>A size such as <c>4G</c>, <c>512M</c>, <c>2GiB</c> or a number of bytes (binary units); null when malformed or zero.</summary>
    public static long? ParseSize(string text)
    {
        var m = Size().Match(text.Trim());
        if (!m.Success || !long.TryParse(m.Groups[1].Value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) || n == 0)
        {
            return null;
        }
        var unit = m.Groups[2].Success ? char.ToUpperInvariant(m.Groups[2].Value[0]) : 'B';
        var shift = unit switch { 'K' => 10, 'M' => 20, 'G' => 30, 'T' => 40, _ => 0 };
        return n > (long.MaxValue >> shift) ? null : n << shift;
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9._-]*$")]
    public static partial Regex ImageName();

    /// <summary>A channel name is also a registry tag (<c>REPO:CHANNEL</c>): the distribution spec's tag grammar.</summary>
    [GeneratedRegex("^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")]
    public static partial Regex ChannelName();

    [GeneratedRegex("^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:_-]+)?$")]
    public static partial Regex PackageName();

    [GeneratedRegex("^[a-z][a-z0-9.-]*$")]
    public static partial Regex Suite();

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*$")]
    public static partial Regex EnvName();

    [GeneratedRegex("^([0-9]+)(:([0-9]+))?$")]
    public static partial Regex Owner();

    [GeneratedRegex("^0?[0-7]{3,4}$")]
    public static partial Regex OctalMode();

    [GeneratedRegex("^([0-9]+)(/(tcp|udp))?$")]
    public static partial Regex Port();

    [GeneratedRegex("^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")]
    public static partial Regex Tag();

    /// <summary>An absolute path inside an image: starts with '/', no '..' component.</summary>
    public static bool IsAbsoluteImagePath(string path) =>
        path.StartsWith('/') && !path.Split('/').Contains("..");

    /// <summary>Collapses repeated slashes and "." components, keeping a trailing slash if written.</summary>
    public static string NormaliseImagePath(string path)
    {
        var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(p => p != ".");
        var joined = "/" + string.Join('/', parts);
        return path.EndsWith('/') && joined.Length > 1 ? joined + "/" : joined;
    }

    public static int ParseOctal(string text) => Convert.ToInt32(text, 8);
}
