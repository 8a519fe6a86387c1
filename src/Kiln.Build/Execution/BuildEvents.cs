using Kiln.Oci;

namespace Kiln.Build.Execution;

/// <summary>Progress of a build, as data: the CLI renders it.</summary>
public abstract record BuildEvent(string Image);

public sealed record ImageStarted(string Image, int StepCount) : BuildEvent(Image);

/// <summary>Index -1 is the image's base (bootstrap or import).</summary>
public sealed record StepStarted(string Image, int Index, string Description) : BuildEvent(Image);

public sealed record StepOutput(string Image, int Index, string Line) : BuildEvent(Image);

public sealed record StepFinished(string Image, int Index, string Description, bool Cached, TimeSpan Duration, Descriptor? Layer) : BuildEvent(Image);

/// <summary>Something the user should know that does not stop the build (e.g. a secret-looking env value).</summary>
public sealed record BuildWarning(string Image, string Message) : BuildEvent(Image);

/// <summary>An image was minimized (or its minimized form found in the store) and is about to be tested again.</summary>
public sealed record ImageMinimized(string Image, Descriptor Manifest, MinimizeOutcome Outcome) : BuildEvent(Image);

public sealed record ImageFinished(string Image, ImageResult Result) : BuildEvent(Image);

public sealed record StepResult(int Index, string Description, bool Cached, TimeSpan Duration, Descriptor? Layer)
{
    /// <summary>Cached in a remote cache (<c>--cache-from</c>), not the store.</summary>
    public bool Remote { get; init; }
}

public sealed record ImageResult
{
    public required string Name { get; init; }
    public required Descriptor Manifest { get; init; }
    public required IReadOnlyList<StepResult> Steps { get; init; }
    public required TimeSpan Duration { get; init; }
    /// <summary>What the image's tests found; <see cref="GateResult.Untested"/> when it has none.</summary>
    public GateResult Tests { get; init; } = GateResult.Untested;
    /// <summary>The manifest digest of the registry image the image starts from (<c>from: HOST/REPO</c>), else null.</summary>
    public Digest? BaseDigest { get; init; }
    /// <summary>The minimized form's outcome when the image has <c>minimize:</c> (then <see cref="Manifest"/> is the
    /// minimized image and <see cref="FullManifest"/> the full one, tagged <c>NAME.full</c>), else null.</summary>
    public MinimizeOutcome? Minimized { get; init; }
    public Descriptor? FullManifest { get; init; }
    /// <summary>Failed its tests: tagged <c>NAME.rejected</c>, not NAME.</summary>
    public bool Rejected => !Tests.Passed;
    public int StepsRun => Steps.Count(s => !s.Cached);
    public int StepsCached => Steps.Count(s => s.Cached);
}

public sealed record BuildResult(IReadOnlyList<ImageResult> Images)
{
    /// <summary>Images not built because an image they need was rejected.</summary>
    public IReadOnlyList<SkippedImage> Skipped { get; init; } = [];

    /// <summary>The definition that was built (as planned), for what comes after the build, such as outputs.</summary>
    public Definition.KilnFile? File { get; init; }

    public bool Passed => Images.All(i => !i.Rejected) && Skipped.Count == 0;

    /// <summary>What the remote cache did, or null without one.</summary>
    public RemoteCacheSummary? RemoteCache { get; init; }
}

public sealed record TestPhaseStarted(string Image, string Phase, int CheckCount) : BuildEvent(Image);

public sealed record CheckFinished(string Image, string Phase, CheckReport Check) : BuildEvent(Image);

public sealed record TestPhaseFinished(string Image, TestPhaseReport Report) : BuildEvent(Image);

/// <summary>The image failed its tests: it is kept under <paramref name="Tag"/> and does not take its name.</summary>
public sealed record ImageRejected(string Image, Descriptor Manifest, string Tag) : BuildEvent(Image)
{
    /// <summary>The name pointed at this very image (only the spec changed), so the name was removed.</summary>
    public bool NameRemoved { get; init; }
}

/// <summary>The image was not built because an image it needs was rejected or skipped.</summary>
public sealed record ImageSkipped(string Image, string Because) : BuildEvent(Image);

public sealed record SkippedImage(string Name, string Because);

/// <summary>A timed phase, for traces: of step <paramref name="Step"/> of an image (-1: its base), of the image as a
/// whole when <paramref name="Step"/> is null, or of the whole build when <paramref name="Image"/> is empty.</summary>
public sealed record StepPhase(string Image, int? Step, string Phase, DateTimeOffset Start, TimeSpan Duration) : BuildEvent(Image);
