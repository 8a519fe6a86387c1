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

public sealed record ImageFinished(string Image, ImageResult Result) : BuildEvent(Image);

public sealed record StepResult(int Index, string Description, bool Cached, TimeSpan Duration, Descriptor? Layer);

public sealed record ImageResult
{
    public required string Name { get; init; }
    public required Descriptor Manifest { get; init; }
    public required IReadOnlyList<StepResult> Steps { get; init; }
    public required TimeSpan Duration { get; init; }
    public int StepsRun => Steps.Count(s => !s.Cached);
    public int StepsCached => Steps.Count(s => s.Cached);
}

public sealed record BuildResult(IReadOnlyList<ImageResult> Images);

/// <summary>A timed phase, for traces: of step <paramref name="Step"/> of an image (-1: its base), of the image as a
/// whole when <paramref name="Step"/> is null, or of the whole build when <paramref name="Image"/> is empty.</summary>
public sealed record StepPhase(string Image, int? Step, string Phase, DateTimeOffset Start, TimeSpan Duration) : BuildEvent(Image);
