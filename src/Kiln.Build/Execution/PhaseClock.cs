using System.Diagnostics;

namespace Kiln.Build.Execution;

/// <summary>Times the phases of one step (or image, or build) and reports each as a <see cref="StepPhase"/>.</summary>
internal sealed class PhaseClock
{
    private readonly IProgress<BuildEvent>? _progress;
    private readonly string _image;
    private readonly int? _step;

    public PhaseClock(IProgress<BuildEvent>? progress, string image, int? step)
    {
        _progress = progress;
        _image = image;
        _step = step;
    }

    /// <summary>Starts timing <paramref name="phase"/>; disposing the scope reports it (also when the phase threw).</summary>
    public Scope Measure(string phase) => new(this, phase, DateTimeOffset.UtcNow, Stopwatch.GetTimestamp());

    public void Report(string phase, DateTimeOffset start, TimeSpan duration) =>
        _progress?.Report(new StepPhase(_image, _step, phase, start, duration));

    public readonly struct Scope : IDisposable
    {
        private readonly PhaseClock _clock;
        private readonly string _phase;
        private readonly DateTimeOffset _start;
        private readonly long _timestamp;

        internal Scope(PhaseClock clock, string phase, DateTimeOffset start, long timestamp)
        {
            _clock = clock;
            _phase = phase;
            _start = start;
            _timestamp = timestamp;
        }

        public DateTimeOffset Start => _start;

        public void Dispose() => _clock.Report(_phase, _start, Stopwatch.GetElapsedTime(_timestamp));
    }
}
