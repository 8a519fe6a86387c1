using System.Diagnostics;
using Kiln.Build.Definition;
using Kiln.Build.Layers;
using Kiln.Build.Planning;
using Kiln.Build.Store;
using Kiln.Build.Store.Content;
using Kiln.Oci;

namespace Kiln.Build.Execution;

/// <summary>Runs a build plan: each image's base, then each step (or its cached result), then the image's
/// config; writes the image to the store and tags it with its name.</summary>
public sealed class Executor
{
    private readonly KilnStore _store;
    private readonly BuildOptions _options;
    private readonly IProgress<BuildEvent>? _progress;
    private readonly IImageGate? _gate;
    private IRemoteCache? _remote;
    private readonly RegistryBases _registryBases;

    /// <param name="registryBases">The registry bases the plan was keyed with (<c>from: HOST/REPO</c>); null: resolved here.</param>
    public Executor(KilnStore store, BuildOptions options, IProgress<BuildEvent>? progress = null, IImageGate? gate = null,
        RegistryBases? registryBases = null)
    {
        _registryBases = registryBases ?? new RegistryBases(store.Root, options);
        _store = store;
        _options = options;
        _progress = progress;
        _gate = gate;
    }

    /// <summary>The tag a rejected image is kept under.</summary>
    public static string RejectedTag(string image) => image + ".rejected";

    public async Task<BuildResult> BuildAsync(BuildPlan plan, CancellationToken cancellationToken = default)
    {
        var finals = new Dictionary<string, (ImageState State, bool Dirty)>(StringComparer.Ordinal);
        var results = new List<ImageResult>();
        var skipped = new List<SkippedImage>();
        var blocked = new HashSet<string>(StringComparer.Ordinal);
        _remote = _options.RemoteCache?.Invoke(plan.File);
        using var storeLock = _store.AcquireLock(exclusive: false, cancellationToken);
        try
        {
            await BuildImagesAsync(plan, finals, results, skipped, blocked, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // The build's own error is the one to see; what the tests left running is still awaited under the lock.
            if (_gate is not null)
            {
                await _gate.WhenIdleAsync().ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default).ConfigureAwait(false);
            }
            throw;
        }
        if (_gate is not null)
        {
            await _gate.WhenIdleAsync().ConfigureAwait(false);
        }
        if (_remote is not null)
        {
            await _remote.FlushAsync(_store, cancellationToken).ConfigureAwait(false);
        }
        return new BuildResult(results) { Skipped = skipped, File = plan.File, RemoteCache = _remote?.Summary };
    }

    private async Task BuildImagesAsync(BuildPlan plan, Dictionary<string, (ImageState State, bool Dirty)> finals, List<ImageResult> results,
        List<SkippedImage> skipped, HashSet<string> blocked, CancellationToken cancellationToken)
    {
        foreach (var image in plan.Images)
        {
            if (image.Definition.Source is FromImageSource parent && blocked.Contains(parent.ImageName))
            {
                var because = skipped.Any(s => s.Name == parent.ImageName)
                    ? $"it needs {parent.ImageName}, which was not built" : $"it needs {parent.ImageName}, which failed its tests";
                skipped.Add(new SkippedImage(image.Name, because));
                blocked.Add(image.Name);
                _progress?.Report(new ImageSkipped(image.Name, because));
                continue;
            }
            var result = await BuildImageAsync(plan, image, finals, cancellationToken).ConfigureAwait(false);
            results.Add(result);
            if (result.Rejected)
            {
                blocked.Add(image.Name);
            }
            _progress?.Report(new ImageFinished(image.Name, result));
        }
    }

    private async Task<ImageResult> BuildImageAsync(BuildPlan plan, ImagePlan image, Dictionary<string, (ImageState State, bool Dirty)> finals, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        _progress?.Report(new ImageStarted(image.Name, image.Steps.Count));
        foreach (var warning in image.Steps.Where(s => s.Step is EnvStep)
            .SelectMany(s => SecretLooking.Warnings(image.Name, $"step {s.Index + 1} (env)", ((EnvStep)s.Step).Variables))
            .Concat(SecretLooking.Warnings(image.Name, "config.env", image.Definition.Config.Env)))
        {
            _progress?.Report(new BuildWarning(image.Name, warning));
        }
        var steps = new List<StepResult>();
        ImageState state;
        Digest? baseDigest = null; // the registry image a `from: HOST/REPO` base is, for the result
        bool dirty = false; // true once a step's result differs from what the cache held for its key
        switch (image.Definition.Source)
        {
            case FromImageSource from:
                (state, dirty) = finals[from.ImageName];
                break;
            case ScratchSource:
                state = ImageState.Empty(_options.Timestamp);
                break;
            case BootstrapSource bootstrap:
                {
                    var r = await BaseStepAsync(image, "bootstrap " + Describe(bootstrap), fetches: true,
                        () => new Bootstrapper(_store, _options).RunAsync(image.Name, bootstrap, line => Output(image.Name, -1, line), ct), ct).ConfigureAwait(false);
                    state = r.State;
                    dirty = r.Dirty;
                    steps.Add(r.Result);
                    break;
                }
            case OciLayoutSource oci:
                {
                    var r = await BaseStepAsync(image, $"from oci:{oci.LayoutPath}:{oci.Tag}", fetches: false,
                        () => OciImport.ImportAsync(_store, oci, _options, ct), ct).ConfigureAwait(false);
                    state = r.State;
                    dirty = r.Dirty;
                    steps.Add(r.Result);
                    break;
                }
            case OciArchiveSource archive:
                {
                    var r = await BaseStepAsync(image, "from " + archive.Written, fetches: false,
                        () => OciImport.ImportAsync(_store, archive, _options, ct), ct).ConfigureAwait(false);
                    state = r.State;
                    dirty = r.Dirty;
                    steps.Add(r.Result);
                    break;
                }
            case RegistrySource registry:
                {
                    baseDigest = _registryBases.Manifest(registry).Digest;
                    var r = await BaseStepAsync(image, $"from {registry.Reference}@{baseDigest}", fetches: false,
                        () => _registryBases.ImportAsync(_store, registry, null, ct), ct).ConfigureAwait(false);
                    if (!_registryBases.IsPinned(registry))
                    {
                        // The base came from the step cache: the store still gets the image, named, so it stays pinned.
                        await _registryBases.ImportAsync(_store, registry, null, ct).ConfigureAwait(false);
                    }
                    state = r.State;
                    dirty = r.Dirty;
                    steps.Add(r.Result);
                    break;
                }
            default:
                throw new NotSupportedException($"{image.Name}: this kind of base is not supported yet");
        }

        var remoteHits = new List<(string Key, ImageState State)>(); // steps a remote cache gave, for the local step cache
        var pending = new List<Task>(); // store writes that run alongside the next step or the tests
        EarlyLayer? early = null; // the last step's layer, read by the tests before it is durable
        Task? durable = null; // until the last step's layer is durable (its snapshot may still wait to be moved into place)
        bool preparing = false;
        Descriptor manifest;
        GateResult tests;
        try
        {
            foreach (var step in image.Steps)
            {
                ct.ThrowIfCancellationRequested();
                _progress?.Report(new StepStarted(image.Name, step.Index, step.Description));
                _options.TestFault?.Invoke("step-start", step.Index + 1);
                var stepClock = Stopwatch.StartNew();
                var phases = new PhaseClock(_progress, image.Name, step.Index);
                ImageState? cached;
                bool remote = false;
                using (phases.Measure("cache lookup"))
                {
                    cached = _options.NoCache ? null : _store.StepCache.TryGet(step.CacheKey);
                    if (cached is null && _remote is not null && !_options.NoCache && !dirty && !(_options.Refresh && step.FetchesPackages))
                    {
                        cached = await _remote.TryGetStepAsync(step.CacheKey, ct).ConfigureAwait(false);
                        remote = cached is not null;
                    }
                }
                bool reuse = cached is not null && !dirty && !(_options.Refresh && step.FetchesPackages);
                ImageState next;
                if (reuse)
                {
                    next = cached!;
                }
                else
                {
                    if (_remote is not null)
                    {
                        // The step runs on the state before it: layers a remote cache gave are fetched and extracted now.
                        await _remote.MaterializeAsync(_store, state, ct).ConfigureAwait(false);
                    }
                    if (!preparing)
                    {
                        // The image changes, so its checks will most likely run: what they need is made while this
                        // step runs, rather than when they wait for it.
                        preparing = true;
                        _gate?.Prepare(image);
                    }
                    var runner = new StepRunner(_store, _options, plan.File, line => Output(image.Name, step.Index, line), phases,
                        warning => _progress?.Report(new BuildWarning(image.Name, warning)));
                    Task? stepDurable = null;
                    if (_gate is not null && step == image.Steps[^1])
                    {
                        // The image's last step: its tests may read its layer while the layer is made durable.
                        early = new EarlyLayer();
                        var run = runner.RunAsync(image.Name, step, state, ct, early);
                        pending.Add(run);
                        await Task.WhenAny(early.State, run).ConfigureAwait(false);
                        next = early.State.IsCompletedSuccessfully ? early.State.Result : await run.ConfigureAwait(false);
                        // Durable: once the step says so, or has ended (ended without handing over, or failed).
                        durable = stepDurable = Task.WhenAny(early.Durable, run).Unwrap();
                    }
                    else
                    {
                        next = await runner.RunAsync(image.Name, step, state, ct).ConfigureAwait(false);
                    }
                    if (cached is null || !SameLayers(cached, next))
                    {
                        dirty = dirty || cached is not null;
                    }
                    // Written while the build goes on, once the layer's blob and snapshot content are durable (a lookup finds
                    // the entry complete only once the snapshot is in place, too); it is awaited before the image is tagged.
                    pending.Add(Task.Run(async () =>
                    {
                        if (stepDurable is not null)
                        {
                            await stepDurable.ConfigureAwait(false);
                        }
                        using (phases.Measure("cache store"))
                        {
                            await _store.StepCache.PutAsync(step.CacheKey, next, ct).ConfigureAwait(false);
                        }
                    }, ct));
                }
                var layer = next.Layers.Count > state.Layers.Count ? next.Layers[^1] : null;
                var sr = new StepResult(step.Index, step.Description, reuse, stepClock.Elapsed, layer) { Remote = remote };
                _remote?.RecordStep(step.CacheKey, next);
                if (remote)
                {
                    remoteHits.Add((step.CacheKey, next));
                }
                steps.Add(sr);
                _progress?.Report(new StepFinished(image.Name, step.Index, step.Description, reuse, sr.Duration, layer));
                state = next;
            }

            state = state with
            {
                Config = state.Config with
                {
                    Created = _options.Timestamp,
                    Config = ConfigMerge.Apply(state.Config.Config, image.Definition.Config),
                },
            };
            finals[image.Name] = (state, dirty);
            // The tests need the image's digest, not its stored documents: they run while those are written (and while
            // the last step's cache entry is). All is durable before the image is tagged.
            manifest = ContentStore.DescribeImage(state);
            var finalState = state;
            pending.Add(Task.Run(async () =>
            {
                if (durable is not null)
                {
                    await durable.ConfigureAwait(false); // the image's documents name its blobs: they are in the store first
                }
                if (_remote is not null)
                {
                    // A named image has its blobs (`kiln verify`, push, export): the layers a remote cache gave it are
                    // fetched, those of steps it no longer has are not. Nothing reads its files here, so they are
                    // extracted on first use (a step on it, its tests, run, a disk), as a pulled image's are.
                    using (new PhaseClock(_progress, image.Name, null).Measure("fetch layers"))
                    {
                        await _remote.FetchBlobsAsync(_store, finalState.Layers, ct).ConfigureAwait(false);
                    }
                }
                using (new PhaseClock(_progress, image.Name, null).Measure("write image"))
                {
                    await _store.Content.WriteImageAsync(finalState, ct).ConfigureAwait(false);
                }
            }, ct));
            using (new PhaseClock(_progress, image.Name, null).Measure("tests"))
            {
                tests = _gate is null ? GateResult.Untested : await _gate.CheckAsync(image, manifest, state, ct).ConfigureAwait(false);
            }
            early?.Release();
            await Task.WhenAll(pending).ConfigureAwait(false);
            // Their layers are in the store now: the next build finds these steps without asking the remote cache. Layers
            // not extracted yet are extracted when something reads them.
            foreach (var (key, hit) in remoteHits)
            {
                if (hit.Layers.All(l => _store.Content.HasBlob(l.Digest)))
                {
                    await _store.StepCache.PutAsync(key, hit, ct, unpackedOnUse: !hit.Config.RootFs.DiffIds.All(_store.Snapshots.HasSnapshot)).ConfigureAwait(false);
                }
            }
        }
        catch
        {
            // Nothing of this build may still write once it has failed or been cancelled (the store lock goes with it).
            early?.Release();
            await Task.WhenAll(pending).ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default).ConfigureAwait(false);
            throw;
        }
        MinimizeOutcome? minimized = null;
        Descriptor? fullManifest = null;
        if (tests.Passed && image.Definition.Minimize is not null && _gate?.Minimizer is { } minimizer)
        {
            (fullManifest, manifest, minimized, tests) = await MinimizeAsync(image, minimizer, manifest, state, tests, ct).ConfigureAwait(false);
            state = minimized.State;
            // A new minimized form is a new base for the images built from this one (its keys do not cover the spec).
            finals[image.Name] = (state, dirty || !minimized.Cached);
        }
        if (tests.Passed)
        {
            await _store.Names.TagAsync(image.Name, manifest, ct).ConfigureAwait(false);
            if (_store.Names.TryGetTag(RejectedTag(image.Name)) is not null)
            {
                await _store.Names.UntagAsync(RejectedTag(image.Name), ct).ConfigureAwait(false);
            }
        }
        else
        {
            // Kept for inspection under its own tag (which also keeps gc from collecting it); never given the name.
            await _store.Names.TagAsync(RejectedTag(image.Name), manifest, ct).ConfigureAwait(false);
            // Only the spec changed and the very image the name points at fails it: the name goes, rather than
            // name an image that fails its current tests.
            bool nameRemoved = _store.Names.TryGetTag(image.Name)?.Digest == manifest.Digest
                && await _store.Names.UntagAsync(image.Name, ct).ConfigureAwait(false);
            _progress?.Report(new ImageRejected(image.Name, manifest, RejectedTag(image.Name)) { NameRemoved = nameRemoved });
        }
        return new ImageResult
        {
            Name = image.Name,
            Manifest = manifest,
            Steps = steps,
            Duration = clock.Elapsed,
            Tests = tests,
            BaseDigest = baseDigest,
            Minimized = minimized,
            FullManifest = fullManifest,
        };
    }

    /// <summary>The tag the full form of a minimized image is kept under.</summary>
    public static string FullTag(string image) => image + Definition.DefinitionSyntax.FullSuffix;

    /// <summary>Keeps the full image as <c>NAME.full</c>, makes its minimized form and tests that with the full spec.
    /// Returns the minimized image's manifest and the tests of both (the retest's phases named "minimized ...").</summary>
    private async Task<(Descriptor Full, Descriptor Manifest, MinimizeOutcome Outcome, GateResult Tests)> MinimizeAsync(ImagePlan image,
        IImageMinimizer minimizer, Descriptor full, ImageState state, GateResult tests, CancellationToken ct)
    {
        await _store.Names.TagAsync(FullTag(image.Name), full, ct).ConfigureAwait(false);
        MinimizeOutcome outcome;
        Descriptor manifest;
        using (new PhaseClock(_progress, image.Name, null).Measure("minimize"))
        {
            outcome = await minimizer.MinimizeAsync(image, full, state, ct).ConfigureAwait(false);
            manifest = await _store.Content.WriteImageAsync(outcome.State, ct).ConfigureAwait(false);
        }
        _progress?.Report(new ImageMinimized(image.Name, manifest, outcome));
        GateResult retest;
        using (new PhaseClock(_progress, image.Name, null).Measure("retest"))
        {
            retest = await _gate!.CheckAsync(image, manifest, outcome.State, ct).ConfigureAwait(false);
        }
        await minimizer.RetestedAsync(outcome, retest, ct).ConfigureAwait(false);
        return (full, manifest, outcome, new GateResult([.. tests.Phases, .. retest.Phases.Select(p => p with { Phase = "minimized " + p.Phase })]));
    }

    private async Task<(ImageState State, bool Dirty, StepResult Result)> BaseStepAsync(
        ImagePlan image, string description, bool fetches, Func<Task<ImageState>> make, CancellationToken ct)
    {
        _progress?.Report(new StepStarted(image.Name, -1, description));
        _options.TestFault?.Invoke("step-start", 0);
        var clock = Stopwatch.StartNew();
        ImageState? cached;
        bool remote = false;
        using (new PhaseClock(_progress, image.Name, -1).Measure("cache lookup"))
        {
            cached = _options.NoCache ? null : _store.StepCache.TryGet(image.BaseKey);
            if (cached is null && _remote is not null && !_options.NoCache && !(_options.Refresh && fetches))
            {
                cached = await _remote.TryGetStepAsync(image.BaseKey, ct).ConfigureAwait(false);
                remote = cached is not null;
            }
        }
        bool reuse = cached is not null && !(_options.Refresh && fetches);
        bool dirty = false;
        ImageState state;
        if (reuse)
        {
            state = cached!;
        }
        else
        {
            state = await make().ConfigureAwait(false);
            dirty = cached is not null && !SameLayers(cached, state);
            await _store.StepCache.PutAsync(image.BaseKey, state, ct).ConfigureAwait(false);
        }
        var layer = state.Layers.Count > 0 ? state.Layers[^1] : null;
        var result = new StepResult(-1, description, reuse, clock.Elapsed, layer) { Remote = remote };
        _remote?.RecordStep(image.BaseKey, state);
        _progress?.Report(new StepFinished(image.Name, -1, description, reuse, result.Duration, layer));
        return (state, dirty, result);
    }

    private static bool SameLayers(ImageState a, ImageState b) =>
        a.Layers.Select(l => l.Digest).SequenceEqual(b.Layers.Select(l => l.Digest));

    private void Output(string image, int index, string line)
    {
        _options.TestFault?.Invoke("step-output", index + 1);
        _progress?.Report(new StepOutput(image, index, line));
    }

    private static string Describe(BootstrapSource b) =>
        $"{b.Distro}/{b.Suite} ({b.Variant}{(b.Packages.Count > 0 ? " + " + string.Join(' ', b.Packages) : "")})";
}
