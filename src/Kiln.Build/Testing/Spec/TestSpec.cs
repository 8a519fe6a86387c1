using Kiln.Build.Definition;
using Kiln.Oci;

namespace Kiln.Build.Testing.Spec;

/// <summary>When a check runs: on the finished image's files (bake), against a started instance (boot), or in a
/// VM booted from the image's disk (vm: only on request, as <c>kiln test --phase vm</c>).</summary>
public enum TestPhase { Bake, Boot, Vm }

/// <summary>An image's test spec: every check, normalised (defaults filled, sorted by section and subject).
/// <see cref="Digest"/> is the SHA-256 of <see cref="Canonical"/>, which holds no position and no formatting.</summary>
public sealed record TestSpec
{
    public required IReadOnlyList<Check> Checks { get; init; }
    public required string Canonical { get; init; }
    public required Digest Digest { get; init; }

    public IEnumerable<Check> In(TestPhase phase) => Checks.Where(c => c.Phase == phase);
}

/// <summary>One check: a section (<c>file</c>, <c>command</c>…) and its subject (a path, a command line…).</summary>
public abstract record Check
{
    public required SourceMark Mark { get; init; }
    public required string Subject { get; init; }
    public abstract string Section { get; }
    public virtual TestPhase Phase => TestPhase.Bake;
    public string Name => $"{Section} {Subject}";
}

public enum FileType { File, Directory, Symlink }

public sealed record FileCheck : Check
{
    public override string Section => "file";
    public bool Exists { get; init; } = true;
    public FileType? Type { get; init; }
    /// <summary>Permission bits (with setuid, setgid, sticky), or null.</summary>
    public int? Mode { get; init; }
    /// <summary>A user name or a numeric uid, as written.</summary>
    public string? Owner { get; init; }
    /// <summary>A group name or a numeric gid, as written.</summary>
    public string? Group { get; init; }
    public string? LinkTarget { get; init; }
    public IReadOnlyList<string> Contains { get; init; } = [];
    /// <summary>Lowercase hex.</summary>
    public string? Sha256 { get; init; }
}

public sealed record PackageCheck : Check
{
    public override string Section => "package";
    public bool Installed { get; init; } = true;
    public string? Version { get; init; }
}

public sealed record UserCheck : Check
{
    public override string Section => "user";
    public bool Exists { get; init; } = true;
    public long? Uid { get; init; }
    public long? Gid { get; init; }
    public string? Home { get; init; }
    public string? Shell { get; init; }
}

public sealed record GroupCheck : Check
{
    public override string Section => "group";
    public bool Exists { get; init; } = true;
    public long? Gid { get; init; }
}

public sealed record CommandCheck : Check
{
    public override string Section => "command";
    public override TestPhase Phase => RunPhase;
    public TestPhase RunPhase { get; init; } = TestPhase.Bake;
    public int ExitStatus { get; init; }
    public IReadOnlyList<string> Stdout { get; init; } = [];
    public IReadOnlyList<string> Stderr { get; init; } = [];
    public string? StdoutMatches { get; init; }
    public string? StderrMatches { get; init; }
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);
}

public sealed record PortCheck : Check
{
    public override string Section => "port";
    public override TestPhase Phase => TestPhase.Boot;
    /// <summary>"tcp" or "udp".</summary>
    public required string Protocol { get; init; }
    public required int Port { get; init; }
    public bool Listening { get; init; } = true;
}

public sealed record HttpCheck : Check
{
    public override string Section => "http";
    public override TestPhase Phase => TestPhase.Boot;
    public required Uri Url { get; init; }
    public int Status { get; init; } = 200;
    public IReadOnlyList<string> Body { get; init; } = [];
    /// <summary>Header name (as written) and a string its value must contain; sorted by name.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Headers { get; init; } = [];
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(10);
}

public sealed record ServiceCheck : Check
{
    public override string Section => "service";
    public override TestPhase Phase => TestPhase.Boot;
    public bool? Enabled { get; init; }
    public bool? Active { get; init; }
}
