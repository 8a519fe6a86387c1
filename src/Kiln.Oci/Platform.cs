using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using System.Text.Json.Serialization;

namespace Kiln.Oci;

/// <summary>What an image runs on: the <c>platform</c> of an index entry, in OCI's spelling (<c>linux</c>,
/// <c>amd64</c>, <c>arm64</c>, variants <c>v8</c>, <c>v7</c>, <c>v3</c>).</summary>
public sealed record Platform
{
    [JsonPropertyName("architecture")]
    public required string Architecture { get; init; }

    [JsonPropertyName("os")]
    public required string Os { get; init; }

    [JsonPropertyName("variant")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Variant { get; init; }

    /// <summary>The machine this process runs on. On amd64 the variant is the highest x86-64 level
    /// (<c>v2</c>..<c>v4</c>) whose instructions the CPU has, so an index that offers several levels gives the best
    /// image that still runs here.</summary>
    public static Platform Host { get; } = DetectHost();

    /// <summary><c>os/architecture[/variant]</c>, as tools print platforms.</summary>
    public override string ToString() => Variant is { Length: > 0 } v ? $"{Os}/{Architecture}/{v}" : $"{Os}/{Architecture}";

    /// <summary>How well an image built for <paramref name="image"/> fits a machine of this platform: null when it
    /// cannot run here, otherwise higher for a closer fit (a higher variant this machine supports).</summary>
    /// <remarks>Variants are ordered only where they form a ladder of instruction sets: amd64 v1..v4 (none means
    /// v1), arm v5..v8 (none means v7, as containerd reads it) and arm64 v8, v9 (none means v8). Elsewhere they must
    /// be equal.</remarks>
    public int? Fit(Platform image)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (!string.Equals(Os, image.Os, StringComparison.OrdinalIgnoreCase)
            || NormaliseArchitecture(Architecture) != NormaliseArchitecture(image.Architecture))
        {
            return null;
        }
        var arch = NormaliseArchitecture(Architecture);
        int? mine = Level(arch, Variant), theirs = Level(arch, image.Variant);
        if (mine is { } m && theirs is { } t)
        {
            return t <= m ? t : null;
        }
        return string.Equals(Variant ?? "", image.Variant ?? "", StringComparison.OrdinalIgnoreCase) ? 0 : null;
    }

    private static string NormaliseArchitecture(string arch) => arch.ToLowerInvariant() switch
    {
        "x86_64" or "x86-64" => "amd64",
        "aarch64" => "arm64",
        var a => a,
    };

    private static int? Level(string arch, string? variant)
    {
        var v = variant?.ToLowerInvariant();
        return (arch, v) switch
        {
            ("amd64", null or "" or "v1") => 1,
            ("amd64", "v2") => 2,
            ("amd64", "v3") => 3,
            ("amd64", "v4") => 4,
            ("arm", "v5") => 5,
            ("arm", "v6") => 6,
            ("arm", null or "" or "v7") => 7,
            ("arm", "v8") => 8,
            ("arm64", null or "" or "v8") => 8,
            ("arm64", "v9") => 9,
            _ => null,
        };
    }

    private static Platform DetectHost()
    {
        var arch = RuntimeInformation.OSArchitecture switch
        {
            System.Runtime.InteropServices.Architecture.X64 => "amd64",
            System.Runtime.InteropServices.Architecture.Arm64 => "arm64",
            System.Runtime.InteropServices.Architecture.Arm or System.Runtime.InteropServices.Architecture.Armv6 => "arm",
            System.Runtime.InteropServices.Architecture.X86 => "386",
            System.Runtime.InteropServices.Architecture.S390x => "s390x",
            System.Runtime.InteropServices.Architecture.Ppc64le => "ppc64le",
            System.Runtime.InteropServices.Architecture.RiscV64 => "riscv64",
            System.Runtime.InteropServices.Architecture.LoongArch64 => "loong64",
            var other => other.ToString().ToLowerInvariant(),
        };
        string? variant = arch switch
        {
            "amd64" => Amd64Level(),
            "arm64" => "v8",
            "arm" => RuntimeInformation.OSArchitecture == System.Runtime.InteropServices.Architecture.Armv6 ? "v6" : "v7",
            _ => null,
        };
        return new Platform { Os = "linux", Architecture = arch, Variant = variant };
    }

    /// <summary>The x86-64 micro-architecture level, from the instruction sets the runtime reports. A set the runtime
    /// does not report lowers the level: an image of a lower level always runs.</summary>
    private static string Amd64Level()
    {
        bool v2 = Sse42.IsSupported && Popcnt.IsSupported && Ssse3.IsSupported && Sse41.IsSupported;
        bool v3 = v2 && Avx2.IsSupported && Bmi1.IsSupported && Bmi2.IsSupported && Fma.IsSupported && Lzcnt.IsSupported;
        bool v4 = v3 && Avx512F.IsSupported && Avx512F.VL.IsSupported && Avx512BW.IsSupported && Avx512CD.IsSupported && Avx512DQ.IsSupported;
        return v4 ? "v4" : v3 ? "v3" : v2 ? "v2" : "v1";
    }
}
