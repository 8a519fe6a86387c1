using System.Diagnostics;
using Kiln.Build.Definition;
using Kiln.Build.Execution;
using Kiln.Build.Store;
using Kiln.Build.Testing.Spec;
using Kiln.Build.Testing.Vm;
using Kiln.Oci;

namespace Kiln.Build.Testing;

public sealed record TestOptions
{
    /// <summary>Reuse stored results of passing runs with the same image digest, spec digest and phase.</summary>
    public bool UseCache { get; init; } = true;

    /// <summary>Only this phase, or null for both.</summary>
    public TestPhase? Phase { get; init; }

    /// <summary>The epoch steps saw (SOURCE_DATE_EPOCH inside command checks).</summary>
    public DateTimeOffset Epoch { get; init; } = DateTimeOffset.UnixEpoch;

    /// <summary>The most the tmpfs of a bake command or a boot instance may hold (as
    /// <see cref="BuildOptions.MemoryScratchSize"/>); null: their throwaway writes go to the store's disk.</summary>
    public string? MemoryScratchSize { get; init; } = "50%";

    /// <summary>Where results missing from the store are looked up, and passing results are sent; null: none.</summary>
    public IRemoteCache? RemoteCache { get; init; }

    /// <summary>Records what the bake commands and the boot instance open and execute (minimize: from-tests), or null.</summary>
    public Sandbox.AccessRecorder? Recorder { get; init; }
}

/// <summary>Runs an image's spec phase by phase (bake, then boot), reading and writing the result cache, and
/// reporting progress as build events.</summary>
public sealed class ImageTester
{
    private readonly KilnStore _store;
    private readonly TestOptions _options;
    private readonly IProgress<BuildEvent>? _progress;
    private readonly Teardown _teardown = new();

    public ImageTester(KilnStore store, TestOptions options, IProgress<BuildEvent>? progress = null)
    {
        _store = store;
        _options = options;
        _progress = progress;
    }

    /// <summary>Runs the phases of <paramref name="spec"/> that have checks. A failing bake phase skips the boot phase.
    /// When both must run, the boot phase starts alongside the bake phase (they share nothing but the image's read-only
    /// snapshots): if the bake phase fails, the boot run is cancelled and reported as skipped.</summary>
    public async Task<GateResult> TestAsync(string image, TestSpec spec, BootMode boot, Digest manifest, ImageState state, CancellationToken ct = default)
    {
        var wanted = new[] { TestPhase.Bake, TestPhase.Boot }
            .Where(p => _options.Phase is not { } only || only == p)
            .Select(p => (Phase: p, Checks: spec.In(p).ToList(), Key: CacheKey(manifest, spec.Digest, p)))
            .Where(p => p.Checks.Count > 0)
            .Select(p => (p.Phase, p.Checks, p.Key, Cached: Cached(p.Key, image)))
            .ToList();
        if (_options.RemoteCache is { } remote)
        {
            for (int i = 0; i < wanted.Count; i++)
            {
                if (wanted[i].Cached is null && await RemoteCachedAsync(remote, wanted[i].Key, image, ct).ConfigureAwait(false) is { } found)
                {
                    wanted[i] = wanted[i] with { Cached = found };
                }
            }
            if (wanted.Any(p => p.Cached is null))
            {
                // Something runs on the image: every layer a remote cache gave it is put in the store first.
                await remote.MaterializeAsync(_store, state, ct).ConfigureAwait(false);
            }
        }
        if (wanted.Any(p => p.Cached is null))
        {
            // The checks read the image's files: layers that were pulled or imported are extracted now, on first use.
            await _store.Snapshots.EnsureAsync(state, ct: ct).ConfigureAwait(false);
        }
        using var early = CancellationTokenSource.CreateLinkedTokenSource(ct);
        Task<TestPhaseReport>? bootRun = null;
        if (wanted.Count == 2 && wanted.All(p => p.Cached is null))
        {
            var (_, bootChecks, _, _) = wanted[1];
            _progress?.Report(new TestPhaseStarted(image, PhaseName(TestPhase.Boot), bootChecks.Count));
            bootRun = RunPhaseAsync(image, PhaseName(TestPhase.Boot), TestPhase.Boot, bootChecks, boot, state, early.Token);
        }

        var phases = new List<TestPhaseReport>();
        try
        {
            foreach (var (phase, checks, key, cached) in wanted)
            {
                var name = PhaseName(phase);
                bool startedEarly = phase == TestPhase.Boot && bootRun is not null;
                if (!startedEarly)
                {
                    _progress?.Report(new TestPhaseStarted(image, name, checks.Count));
                }
                TestPhaseReport report;
                if (phases.Any(p => !p.Passed))
                {
                    if (startedEarly)
                    {
                        await early.CancelAsync().ConfigureAwait(false);
                        await IgnoreCancelAsync(bootRun!, ct).ConfigureAwait(false);
                    }
                    report = Skipped(image, name, checks, "the bake phase failed");
                }
                else if (cached is not null)
                {
                    report = cached;
                    if (_options.RemoteCache is { } target && new TestResultStore(_store).TryRead(key) is { } stored)
                    {
                        target.RecordTestResult(key, stored); // the cache target keeps what this build relied on
                    }
                }
                else
                {
                    report = startedEarly
                        ? await bootRun!.ConfigureAwait(false)
                        : await RunPhaseAsync(image, name, phase, checks, boot, state, ct).ConfigureAwait(false);
                    if (report.SkippedBecause is null)
                    {
                        var json = TestResultJson.Write(report, manifest, spec.Digest);
                        _teardown.Add(Task.Run(() => new TestResultStore(_store).WriteAsync(key, json, ct), CancellationToken.None));
                        if (report.Passed)
                        {
                            _options.RemoteCache?.RecordTestResult(key, json);
                        }
                    }
                }
                phases.Add(report);
                _progress?.Report(new TestPhaseFinished(image, report));
            }
        }
        finally
        {
            // An exception in the bake phase: stop the boot run and wait for it (its instance is removed on the way out).
            if (bootRun is { IsCompleted: false })
            {
                await early.CancelAsync().ConfigureAwait(false);
                await IgnoreCancelAsync(bootRun, ct).ConfigureAwait(false);
            }
        }
        return new GateResult(phases);
    }

    /// <summary>Waits for what the tests left running once their answers were in: instances being stopped and removed,
    /// scratch space being removed, results being written. Throws the first error of that work.</summary>
    public Task WhenIdleAsync() => _teardown.WhenIdleAsync();

    private TestPhaseReport? Cached(string key, string image) =>
        _options.UseCache && TestResultJson.Read(new TestResultStore(_store).TryRead(key), image) is { Passed: true } cached ? cached with { Cached = true } : null;

    /// <summary>A passing result of a remote cache, kept in the store as if run here.</summary>
    private async Task<TestPhaseReport?> RemoteCachedAsync(IRemoteCache remote, string key, string image, CancellationToken ct)
    {
        if (!_options.UseCache || await remote.TryGetTestResultAsync(key, ct).ConfigureAwait(false) is not { } json
            || TestResultJson.Read(json, image) is not { Passed: true } found)
        {
            return null;
        }
        await new TestResultStore(_store).WriteAsync(key, json, ct).ConfigureAwait(false);
        return found with { Cached = true, Remote = true };
    }

    /// <summary>Waits for a boot run stopped on purpose: its cancellation, or its own failure, no longer matters once the
    /// bake phase failed. A cancel of the whole test (<paramref name="ct"/>) still propagates.</summary>
    private static async Task IgnoreCancelAsync(Task run, CancellationToken ct)
    {
        try
        {
            await run.ConfigureAwait(false);
        }
        catch (Exception) when (!ct.IsCancellationRequested)
        {
        }
    }

    private async Task<TestPhaseReport> RunPhaseAsync(string image, string name, TestPhase phase, List<Check> checks, BootMode boot,
        ImageState state, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var reports = new List<CheckReport>();
        if (phase == TestPhase.Bake)
        {
            var bake = new BakePhase(_store, state, _options.Epoch, _options.MemoryScratchSize, _teardown, _options.Recorder);
            // A command check takes a sandbox (milliseconds); the others read the image's files. The commands start
            // first, one after another, while the others run here; the reports still come in the spec's order.
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var commands = new Task<CheckReport>?[checks.Count];
            Task previous = Task.CompletedTask;
            for (int i = 0; i < checks.Count; i++)
            {
                if (checks[i] is CommandCheck)
                {
                    commands[i] = RunAfterAsync(previous, bake, checks[i], stop.Token);
                    previous = commands[i]!;
                }
            }
            try
            {
                for (int i = 0; i < checks.Count; i++)
                {
                    var r = commands[i] is { } command ? await command.ConfigureAwait(false) : await bake.RunAsync(checks[i], stop.Token).ConfigureAwait(false);
                    reports.Add(r);
                    _progress?.Report(new CheckFinished(image, name, r));
                }
            }
            finally
            {
                // Left early (an exception): the commands still running are stopped and awaited.
                if (commands.Any(c => c is { IsCompleted: false }))
                {
                    await stop.CancelAsync().ConfigureAwait(false);
                    await Task.WhenAll(commands.OfType<Task<CheckReport>>()).ContinueWith(_ => { }, CancellationToken.None,
                        TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default).ConfigureAwait(false);
                }
            }
            return new TestPhaseReport { Image = image, Phase = name, Checks = reports, Duration = clock.Elapsed };
        }

        var booted = await BootPhase.RunAsync(_store, state, boot, _options.MemoryScratchSize, checks, r => _progress?.Report(new CheckFinished(image, name, r)),
            _teardown, ct, _options.Recorder).ConfigureAwait(false);
        return new TestPhaseReport { Image = image, Phase = name, Checks = booted, Duration = clock.Elapsed };
    }

    private static async Task<CheckReport> RunAfterAsync(Task previous, BakePhase bake, Check check, CancellationToken ct)
    {
        await previous.ConfigureAwait(false);
        return await bake.RunAsync(check, ct).ConfigureAwait(false);
    }

    /// <summary>The VM phase: boots <paramref name="rawDiskPath"/>, the image exported as a raw disk by the caller, and
    /// runs the spec's command (of either phase), service, port and http checks in it (see <see cref="VmPhase"/>). Not
    /// cached: the result depends on the disk as much as on the image. Reports the phase's start, its
    /// <see cref="VmProgress"/>, each check and its end, like the other phases.</summary>
    public async Task<GateResult> TestVmAsync(string image, TestSpec spec, string rawDiskPath, VmOptions vm, CancellationToken ct = default)
    {
        var checks = spec.Checks.Where(VmPhase.Supports).ToList();
        if (checks.Count == 0)
        {
            return GateResult.Untested;
        }
        var name = PhaseName(TestPhase.Vm);
        _progress?.Report(new TestPhaseStarted(image, name, checks.Count));
        var clock = Stopwatch.StartNew();
        var forward = new SynchronousProgress<VmEvent>(e =>
        {
            vm.Progress?.Report(e);
            _progress?.Report(new VmProgress(image, e));
        });
        var reports = await VmPhase.RunAsync(rawDiskPath, checks, vm with { Progress = forward },
            r => _progress?.Report(new CheckFinished(image, name, r)), ct).ConfigureAwait(false);
        var report = new TestPhaseReport { Image = image, Phase = name, Checks = reports, Duration = clock.Elapsed };
        _progress?.Report(new TestPhaseFinished(image, report));
        return new GateResult([report]);
    }

    private sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }

    private static TestPhaseReport Skipped(string image, string name, List<Check> checks, string because) => new()
    {
        Image = image,
        Phase = name,
        Duration = TimeSpan.Zero,
        SkippedBecause = because,
        Checks = [.. checks.Select(c => new CheckReport { Section = c.Section, Subject = c.Subject, Duration = TimeSpan.Zero, Skipped = true })],
    };

    public static string PhaseName(TestPhase phase) => phase switch
    {
        TestPhase.Boot => "boot",
        TestPhase.Vm => "vm",
        _ => "bake",
    };

    /// <summary>SHA-256 over the image's manifest digest, the spec's digest and the phase.</summary>
    public static string CacheKey(Digest manifest, Digest spec, TestPhase phase) =>
        Convert.ToHexStringLower(Sha256Hasher.HashData(
            System.Text.Encoding.UTF8.GetBytes($"{manifest.Value}\n{spec.Value}\n{PhaseName(phase)}\n")));
}
