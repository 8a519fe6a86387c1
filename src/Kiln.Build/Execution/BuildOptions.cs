using Kiln.Build.Layers;

namespace Kiln.Build.Execution;

public sealed record BuildOptions
{
    /// <summary>Images to build (with what they need); empty: all.</summary>
    public IReadOnlyCollection<string> Targets { get; init; } = [];

    /// <summary>Run every step, ignoring the step cache.</summary>
    public bool NoCache { get; init; }

    /// <summary>Rerun steps that fetch packages (and what follows, when their result changed).</summary>
    public bool Refresh { get; init; }

    public Compression Compression { get; init; } = Compression.Gzip;

    /// <summary>Times in layers are clamped to this; also the images' created time.</summary>
    public DateTimeOffset Epoch { get; init; } = DateTimeOffset.UnixEpoch;

    /// <summary>Where the host's apt configuration lives (for bootstraps without a mirror).</summary>
    public string HostAptDir { get; init; } = "/etc/apt";

    /// <summary>Package lists older than this are refreshed before a packages step.</summary>
    public TimeSpan ListsMaxAge { get; init; } = TimeSpan.FromHours(24);

    /// <summary>Package steps give apt the full package lists, not the packages the image has and those the request
    /// could need (<see cref="PackageView"/>): the same packages, found slower.</summary>
    public bool FullPackageLists { get; init; }

    /// <summary>The digest of a test spec, for the keys of images built on one minimized from its tests (see
    /// <see cref="Planning.PlanOptions.SpecIdentity"/>); set by the builders that test.</summary>
    public Func<Definition.TestSource, Definition.BootMode, string>? SpecIdentity { get; init; }

    /// <summary>Where run and package steps write: on a tmpfs (the default; their layer is then copied to the
    /// store's disk while it is packed) or straight into the store's temp dir on disk.</summary>
    public bool ScratchOnDisk { get; init; }

    /// <summary>The most a step's tmpfs may hold: a percentage of the RAM (or of kiln's cgroup limit, when lower), or
    /// bytes with an optional k, m or g; never more than half the memory free when the step starts, and no tmpfs
    /// at all with less than 512 MiB free. A step that fills it is run again on disk.</summary>
    public string MemoryScratchSize { get; init; } = "50%";

    /// <summary>Throws <see cref="ArgumentException"/> (naming the value) unless <paramref name="size"/> is a
    /// <see cref="MemoryScratchSize"/> kiln understands.</summary>
    public static void CheckMemoryScratchSize(string size) => ScratchSpace.Bytes(size, new MemoryFacts(1L << 40, 1L << 40, null, null));

    /// <summary>Limits for layers that come from outside (<c>from: oci:</c>).</summary>
    public ExtractionOptions Extraction { get; init; } = ExtractionOptions.Default;

    /// <summary>The platform whose image an imported index gives (<c>from: oci:</c> of a multi-platform image).</summary>
    public Kiln.Oci.Platform Platform { get; init; } = Kiln.Oci.Platform.Host;

    /// <summary>The remote cache of a build of the given definition (its <c>cache:</c> and the command line's
    /// <c>--cache-from</c>/<c>--cache-to</c>), or null for none. The build and its tests both ask: the caller gives one
    /// instance per definition, and disposes of it after the build.</summary>
    public Func<Definition.KilnFile, IRemoteCache?>? RemoteCache { get; init; }

    /// <summary>Opens a client for a registry host, for <c>from: HOST/REPO</c>: the caller supplies credentials,
    /// certificates and whether plain HTTP is allowed. Null: a client with the default options.</summary>
    public Func<string, Kiln.Oci.Registry.RegistryClient>? OpenRegistry { get; init; }

    /// <summary>Where a registry reference is fetched from (registries.conf moving a namespace elsewhere), for
    /// <c>from: HOST/REPO</c>; the store still names the image by the reference as written. Null: where it says.</summary>
    public Func<Kiln.Oci.Registry.ImageReference, Kiln.Oci.Registry.ImageReference>? LocateRegistry { get; init; }

    /// <summary>Reads the environment variables that <c>secrets: [{env: VAR}]</c> name (the library reads no
    /// environment itself); null for an unset variable.</summary>
    public Func<string, string?> SecretEnvironment { get; init; } = _ => null;

    /// <summary>For tests only: called at named points of a build so that a test can make kiln fail where no real
    /// input can (a bug's stand-in). Points: "step-start" with the step's number (0 for the base) before a step
    /// runs, and "step-output" with the step's number for each line a step prints, on the thread that reads it.
    /// Null in normal use; the CLI sets it only from its test-only KILN_TEST_FAULT variable.</summary>
    public Action<string, int>? TestFault { get; init; }

    /// <summary>Called when a run or packages step fails, before its tree is thrown away (<c>kiln build --debug</c>
    /// opens a shell on it); the build goes on failing once it returns. Null: nothing.</summary>
    public Func<FailedStep, CancellationToken, Task>? OnStepFailed { get; init; }

    public string Timestamp => Epoch.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>A run or packages step that failed, with its tree as it left it: the files it wrote
/// (<see cref="UpperDir"/>) over the image's layers. Valid only during <see cref="BuildOptions.OnStepFailed"/>; nothing
/// may be written to either.</summary>
public sealed record FailedStep
{
    public required string Image { get; init; }

    /// <summary>The step's number, from 1.</summary>
    public required int Number { get; init; }

    public required string Description { get; init; }
    public required int ExitStatus { get; init; }
    public required string UpperDir { get; init; }
    public required IReadOnlyList<string> LowerDirsTopFirst { get; init; }
    public required IReadOnlyList<KeyValuePair<string, string>> Environment { get; init; }
    public required string WorkingDirectory { get; init; }
    public string? User { get; init; }
    public bool HostNetwork { get; init; }

    /// <summary>The step's cache and package binds, read-only.</summary>
    public IReadOnlyList<Sandbox.BindMount> Binds { get; init; } = [];
}
