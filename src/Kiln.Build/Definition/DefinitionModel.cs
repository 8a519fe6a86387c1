namespace Kiln.Build.Definition;

/// <summary>Where in a kiln.yaml a value came from (1-based line and column).</summary>
public readonly record struct SourceMark(string File, int Line, int Column)
{
    public override string ToString() => $"{File}:{Line}:{Column}";
}

/// <summary>A parsed, validated and normalised kiln.yaml.</summary>
public sealed record KilnFile
{
    /// <summary>Absolute path of the kiln.yaml.</summary>
    public required string Path { get; init; }

    /// <summary>Absolute path of the build context (the folder holding the file).</summary>
    public required string ContextDir { get; init; }

    /// <summary>Images by name, in file order.</summary>
    public required IReadOnlyList<ImageDefinition> Images { get; init; }

    /// <summary>The remote cache (<c>cache:</c>), or null when the file names none.</summary>
    public CacheDefinition? Cache { get; init; }

    /// <summary>Release targets (<c>release:</c>), in file order.</summary>
    public IReadOnlyList<ReleaseTarget> Release { get; init; } = [];
    /// <summary>The promotion channels (<c>channels:</c>), in file order.</summary>
    public IReadOnlyList<ChannelDefinition> Channels { get; init; } = [];
    /// <summary>Services by name, in file order (<c>services:</c>): packages installed at boot on an image of this file.</summary>
    public IReadOnlyList<ServiceDefinition> Services { get; init; } = [];
}

/// <summary>One entry of <c>services:</c>: a Debian package (a folder built with dpkg-deb, or a .deb file), the image of
/// this file it runs on, configuration values cloud-init writes before installing it, and its own spec.</summary>
public sealed record ServiceDefinition
{
    public required string Name { get; init; }
    public required SourceMark Mark { get; init; }

    /// <summary>The name of the image (of this file) the service is installed on at boot.</summary>
    public required string Image { get; init; }

    /// <summary>Absolute path of the package: a folder (with <c>DEBIAN/control</c>) to build, or a .deb file.</summary>
    public required string Package { get; init; }

    public bool PackageIsFolder { get; init; }

    /// <summary>Configuration values (<c>config:</c>), sorted by key; written to <c>/etc/default/NAME</c> at boot.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Config { get; init; } = [];

    /// <summary>The service's spec (<c>test:</c>), or null.</summary>
    public TestSource? Test { get; init; }
}

public sealed record ImageDefinition
{
    public required string Name { get; init; }
    public required SourceMark Mark { get; init; }
    public required ImageSource Source { get; init; }
    public IReadOnlyList<StepDefinition> Steps { get; init; } = [];
    public ConfigDefinition Config { get; init; } = new();
    /// <summary>The image's test spec (<c>test:</c>), or null when it has none.</summary>
    public TestSource? Test { get; init; }
    /// <summary>How the boot phase starts the image (<c>boot:</c>).</summary>
    public BootMode Boot { get; init; } = BootMode.Process;

    /// <summary>What to write after the image passed its tests (<c>outputs:</c>), in the order written.</summary>
    public IReadOnlyList<OutputDefinition> Outputs { get; init; } = [];

    /// <summary>How the image is minimized once it passed its tests (<c>minimize:</c>), or null to keep it whole.</summary>
    public MinimizeDefinition? Minimize { get; init; }
}

/// <summary><c>minimize:</c>: path profiles to remove, whether to keep only what the image's tests touched, and paths
/// (globs) always kept. The minimized image is checked against the full spec before it takes the name.</summary>
public sealed record MinimizeDefinition
{
    public required SourceMark Mark { get; init; }

    /// <summary>Profile names (docs, man, locales...), sorted, each once.</summary>
    public IReadOnlyList<string> Profiles { get; init; } = [];

    public bool FromTests { get; init; }

    /// <summary>Absolute image paths or globs (<c>*</c> within a name, <c>**</c> across names), normalised, in file order.</summary>
    public IReadOnlyList<string> Keep { get; init; } = [];
}

public enum BootMode { Process, Systemd }

/// <summary>Where an image's test spec comes from: a file of the build context or a map inside kiln.yaml.
/// Validated here only as far as its place goes; the spec itself is read by Kiln.Build.Testing.Spec.</summary>
public sealed record TestSource
{
    public required SourceMark Mark { get; init; }
    /// <summary>Absolute path of the spec file (inside the context), or null when the spec is inline.</summary>
    public string? File { get; init; }
    internal YNode? Inline { get; init; }
}

/// <summary>What an image starts from.</summary>
public abstract record ImageSource
{
    public required SourceMark Mark { get; init; }
}

public sealed record BootstrapSource : ImageSource
{
    public required string Distro { get; init; }          // "debian"
    public required string Suite { get; init; }           // "bookworm"
    public string Variant { get; init; } = "minbase";
    public IReadOnlyList<string> Packages { get; init; } = [];
    /// <summary>Explicit mirror URI, or null to use the build host's apt sources.</summary>
    public string? Mirror { get; init; }
}

public sealed record FromImageSource : ImageSource
{
    public required string ImageName { get; init; }
}

public sealed record ScratchSource : ImageSource;

/// <summary><c>from: oci:PATH[:TAG]</c>; Path is absolute (resolved against the context dir).</summary>
public sealed record OciLayoutSource : ImageSource
{
    public required string LayoutPath { get; init; }
    public string Tag { get; init; } = "latest";
}

/// <summary><c>from: HOST[:PORT]/REPO[:TAG|@DIGEST]</c>: an image of a registry, pulled once into the store and kept
/// there under <see cref="Reference"/> as written, so that a moving tag is pinned to the digest first pulled until a
/// build with <c>--refresh</c> asks the registry again.</summary>
public sealed record RegistrySource : ImageSource
{
    /// <summary>The reference as written in kiln.yaml (validated: it names a registry host).</summary>
    public required string Reference { get; init; }
}

/// <summary><c>from: oci-archive:FILE[:TAG]</c> or <c>from: docker-archive:FILE[:REPO[:TAG]]</c>; the path is absolute
/// (resolved against the context dir); no tag means the archive's only image.</summary>
public sealed record OciArchiveSource : ImageSource
{
    public required string ArchivePath { get; init; }

    /// <summary>The oci-archive's tag, or the docker-archive's <c>REPO[:TAG]</c> among its images' RepoTags.</summary>
    public string? Tag { get; init; }

    /// <summary>A docker-archive (<c>docker save</c>): read by its <c>manifest.json</c>.</summary>
    public bool Docker { get; init; }

    /// <summary>As kiln.yaml writes it.</summary>
    public string Written => (Docker ? "docker-archive:" : "oci-archive:") + ArchivePath + (Tag is null ? "" : ":" + Tag);
}

public abstract record StepDefinition
{
    public required SourceMark Mark { get; init; }
}

public sealed record PackagesStep : StepDefinition
{
    public required IReadOnlyList<string> Packages { get; init; }
}

public enum StepNetwork { Host, None }

public sealed record RunStep : StepDefinition
{
    /// <summary>A shell command line, run with <c>/bin/sh -c</c>.</summary>
    public required string Command { get; init; }
    public StepNetwork Network { get; init; } = StepNetwork.Host;
    /// <summary>Absolute directories inside the image that are persistent cache mounts.</summary>
    public IReadOnlyList<string> Cache { get; init; } = [];
    /// <summary>Secrets mounted read-only at <c>/run/secrets/ID</c> while the step runs, never stored.</summary>
    public IReadOnlyList<SecretRef> Secrets { get; init; } = [];
}

/// <summary>A secret for a run step: a host file (relative to the definition's folder, or absolute) or an
/// environment variable of the kiln process. Only <see cref="Id"/> enters the cache key, never the content.</summary>
public sealed record SecretRef(string Id, string? File, string? Env);

public sealed record CopyStep : StepDefinition
{
    /// <summary>Source paths relative to the context dir, normalised (forward slashes, no "." or ".."),
    /// as written; a trailing slash means "the contents of this directory".</summary>
    public required IReadOnlyList<string> Sources { get; init; }
    /// <summary>Absolute destination inside the image; a trailing slash means "into this directory".</summary>
    public required string To { get; init; }
    public int? Uid { get; init; }
    public int? Gid { get; init; }
    /// <summary>Octal file mode applied to copied regular files (directories keep theirs), or null.</summary>
    public int? Mode { get; init; }
}

public sealed record EnvStep : StepDefinition
{
    /// <summary>Sorted by key.</summary>
    public required IReadOnlyList<KeyValuePair<string, string>> Variables { get; init; }
}

public sealed record WorkdirStep : StepDefinition
{
    public required string Path { get; init; }
}

public sealed record UserStep : StepDefinition
{
    public required string User { get; init; }
}

/// <summary>The <c>config:</c> block; null means "inherit from the parent".</summary>
public sealed record ConfigDefinition
{
    public IReadOnlyList<string>? Entrypoint { get; init; }
    public IReadOnlyList<string>? Cmd { get; init; }
    public IReadOnlyList<KeyValuePair<string, string>>? Env { get; init; }
    public string? Workdir { get; init; }
    public string? User { get; init; }
    /// <summary>Normalised to "PORT/tcp" or "PORT/udp".</summary>
    public IReadOnlyList<string>? Expose { get; init; }
    public IReadOnlyList<KeyValuePair<string, string>>? Labels { get; init; }
    public string? StopSignal { get; init; }
}

/// <summary>One entry of <c>outputs:</c>: a format (oci-archive, docker-archive, rootfs, raw, qcow2, vagrant), where
/// to write it (absolute; null means the default <c>out/NAME.EXT</c> beside kiln.yaml) and, for disks, a size.</summary>
public sealed record OutputDefinition
{
    public required SourceMark Mark { get; init; }
    public required string Format { get; init; }
    public string? Path { get; init; }
    public long? SizeBytes { get; init; }
}
