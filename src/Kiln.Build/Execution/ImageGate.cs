using Kiln.Build.Planning;
using Kiln.Build.Store;
using Kiln.Oci;

namespace Kiln.Build.Execution;

/// <summary>Decides whether a built image may take its name. The executor asks after writing the image's
/// manifest and before tagging it; a failing image is kept as <c>NAME.rejected</c> and what depends on it is
/// not built.</summary>
public interface IImageGate
{
    Task<GateResult> CheckAsync(ImagePlan image, Descriptor manifest, ImageState state, CancellationToken ct);

    /// <summary>A step of <paramref name="image"/> is about to run, so the image changes and its checks will most
    /// likely run: the gate may make ready, in the background, what they will need.</summary>
    void Prepare(ImagePlan image)
    {
    }

    /// <summary>Waits for what the gate left running after its answers (removing test instances, writing results);
    /// the executor calls it before it gives up the store lock. Throws the first error of that work.</summary>
    Task WhenIdleAsync() => Task.CompletedTask;

    /// <summary>Makes the minimized form of images with <c>minimize:</c>; null: this gate does not minimize.</summary>
    IImageMinimizer? Minimizer => null;
}

/// <summary>The outcome of an image's tests, phase by phase. An image without tests passes with no phases.</summary>
public sealed record GateResult(IReadOnlyList<TestPhaseReport> Phases)
{
    public static readonly GateResult Untested = new([]);

    public bool Passed => Phases.All(p => p.Passed);
}

/// <summary>One phase ("bake" or "boot") of one image's tests.</summary>
public sealed record TestPhaseReport
{
    public required string Image { get; init; }
    public required string Phase { get; init; }
    public required IReadOnlyList<CheckReport> Checks { get; init; }
    public required TimeSpan Duration { get; init; }
    /// <summary>The results were read from the result cache (same image digest, same spec digest), not run.</summary>
    public bool Cached { get; init; }

    /// <summary>Cached in a remote cache (<c>--cache-from</c>), not the store.</summary>
    public bool Remote { get; init; }
    /// <summary>Why the phase did not run (its checks are then all skipped), or null.</summary>
    public string? SkippedBecause { get; init; }
    public bool Passed => Checks.All(c => c.Passed);
    public int Failed => Checks.Count(c => !c.Passed);
}

/// <summary>One check (e.g. <c>file /etc/passwd</c>) with each of its matchers that failed.</summary>
public sealed record CheckReport
{
    public required string Section { get; init; }
    public required string Subject { get; init; }
    public required TimeSpan Duration { get; init; }
    public IReadOnlyList<CheckFailure> Failures { get; init; } = [];
    public bool Skipped { get; init; }
    public string Name => $"{Section} {Subject}";
    public bool Passed => Failures.Count == 0;
}

public sealed record CheckFailure(string Matcher, string Expected, string Actual);
