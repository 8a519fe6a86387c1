using System.Collections.Concurrent;
using Kiln.Build.Execution;
using Kiln.Build.Layers;
using Kiln.Build.Store;
using Kiln.Oci;
using Kiln.Oci.Image;
using Kiln.Oci.Registry;

namespace Kiln.Build.Distribution;

/// <summary>The remote cache in registry repositories (<see cref="CacheArtifacts"/> says what is stored). Lookups go to
/// each source repository in order, the first hit wins; what the build records goes to the target repository once the
/// build is done, blobs the target has skipped (HEAD) or mounted from the source repository of the same registry.</summary>
public sealed class RegistryCache : IRemoteCache, IDisposable
{
    /// <summary>A repository of a registry, as the cache names it.</summary>
    private sealed record Repo(RegistryClient Client, string Repository, string Name);

    private readonly IReadOnlyList<Repo> _from;
    private readonly Repo? _to;
    private readonly List<RegistryClient> _clients = [];
    private readonly ExtractionOptions _extraction;
    private readonly ConcurrentDictionary<Digest, Repo> _origins = new();
    private readonly ConcurrentDictionary<Digest, Lazy<Task>> _fetches = new();
    private readonly ConcurrentDictionary<string, ImageState> _steps = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte[]> _tests = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _unavailable = new(StringComparer.Ordinal);
    private readonly Action<string>? _warn;

    /// <summary>Where layer fetches and pushes report their bytes, as a push or pull does; null: nowhere.</summary>
    public IProgress<ImageCopyEvent>? Fetches { get; set; }

    public IProgress<ImageCopyEvent>? Pushes { get; set; }
    private string? _exportError;
    private int _stepsFound, _testsFound, _blobsFetched, _entriesPushed, _entriesPresent, _blobsPushed, _blobsSkipped, _blobsMounted;
    private long _bytesFetched, _bytesPushed;

    /// <param name="from">Source repositories, HOST[:PORT]/REPO each, in the order they are asked.</param>
    /// <param name="to">The target repository, or null.</param>
    /// <param name="open">Opens a client for a registry host (credentials, certificates and plain HTTP are the caller's).</param>
    /// <param name="warn">Told, once per source, that a source failed and the build goes on without it.</param>
    /// <param name="locate">Where a repository is reached (registries.conf moving its namespace elsewhere); null:
    /// where it says. Messages name the repository as given.</param>
    /// <exception cref="ArgumentException">A reference is not a repository of a registry.</exception>
    public RegistryCache(IReadOnlyList<string> from, string? to, Func<string, RegistryClient> open, ExtractionOptions? extraction = null,
        Action<string>? warn = null, Func<ImageReference, ImageReference>? locate = null)
    {
        _warn = warn;
        ArgumentNullException.ThrowIfNull(from);
        ArgumentNullException.ThrowIfNull(open);
        _extraction = extraction ?? ExtractionOptions.Default;
        var clients = new Dictionary<string, RegistryClient>(StringComparer.Ordinal);
        Repo Open(string text)
        {
            var reference = ParseRepository(text);
            reference = locate?.Invoke(reference) ?? reference;
            if (!clients.TryGetValue(reference.Registry, out var client))
            {
                client = open(reference.Registry);
                clients.Add(reference.Registry, client);
                _clients.Add(client);
            }
            return new Repo(client, reference.Repository, text);
        }
        _from = [.. from.Distinct(StringComparer.Ordinal).Select(Open)];
        _to = to is null ? null : Open(to);
    }

    /// <summary>A remote cache for a build: the command line's sources first, then the definition's
    /// (<c>cache: {from, to}</c>); the command line's target, else the definition's. Null when there is neither.</summary>
    public static RegistryCache? For(IReadOnlyList<string> from, string? to, Definition.CacheDefinition? file, Func<string, RegistryClient> open,
        ExtractionOptions? extraction = null, Action<string>? warn = null, Func<ImageReference, ImageReference>? locate = null)
    {
        var sources = from.Concat(file?.From ?? []).ToList();
        var target = to ?? file?.To;
        return sources.Count == 0 && target is null ? null : new RegistryCache(sources, target, open, extraction, warn, locate);
    }

    /// <summary>Parses a cache reference: HOST[:PORT]/REPO, with no tag or digest.</summary>
    /// <exception cref="ArgumentException">It is not one; <see cref="Definition.CacheDefinition.RepositoryProblem"/> says why.</exception>
    public static ImageReference ParseRepository(string text)
    {
        if (Definition.CacheDefinition.RepositoryProblem(text) is { } problem)
        {
            throw new ArgumentException(problem, nameof(text));
        }
        return ImageReference.Parse(text);
    }

    public RemoteCacheSummary Summary => new()
    {
        From = [.. _from.Select(r => r.Name)],
        To = _to?.Name,
        StepsFound = _stepsFound,
        TestResultsFound = _testsFound,
        BlobsFetched = _blobsFetched,
        BytesFetched = Interlocked.Read(ref _bytesFetched),
        EntriesPushed = _entriesPushed,
        EntriesPresent = _entriesPresent,
        BlobsPushed = _blobsPushed,
        BytesPushed = Interlocked.Read(ref _bytesPushed),
        BlobsSkipped = _blobsSkipped,
        BlobsMounted = _blobsMounted,
        Unavailable = [.. _unavailable.OrderBy(u => u.Key, StringComparer.Ordinal).Select(u => $"{u.Key}: {u.Value}")],
        ExportError = _exportError,
    };

    public async Task<ImageState?> TryGetStepAsync(string cacheKey, CancellationToken cancellationToken = default)
    {
        foreach (var repo in _from.Where(r => !_unavailable.ContainsKey(r.Name)))
        {
            var state = await Lookup(repo, () => LookUpAsync(repo, cacheKey, cancellationToken)).ConfigureAwait(false);
            if (state is not null)
            {
                foreach (var layer in state.Layers)
                {
                    _origins.TryAdd(layer.Digest, repo);
                }
                Interlocked.Increment(ref _stepsFound);
                return state;
            }
        }
        return null;
    }

    private static async Task<ImageState?> LookUpAsync(Repo repo, string cacheKey, CancellationToken ct)
    {
        var manifest = await GetManifestOrNullAsync(repo, CacheArtifacts.StepTag(cacheKey), ct).ConfigureAwait(false);
        if (manifest is null || CacheArtifacts.ReadStepManifest(cacheKey, manifest.Content) is not { } entry)
        {
            return null;
        }
        var config = await ReadSmallBlobAsync(repo, entry.Config, ct).ConfigureAwait(false);
        return CacheArtifacts.State(entry.Config, entry.Layers, config);
    }

    public void RecordStep(string cacheKey, ImageState state)
    {
        if (_to is not null)
        {
            _steps[cacheKey] = state;
        }
    }

    public async Task<byte[]?> TryGetTestResultAsync(string key, CancellationToken cancellationToken = default)
    {
        foreach (var repo in _from.Where(r => !_unavailable.ContainsKey(r.Name)))
        {
            var json = await Lookup(repo, async () =>
            {
                var manifest = await GetManifestOrNullAsync(repo, CacheArtifacts.TestResultTag(key), cancellationToken).ConfigureAwait(false);
                return manifest is not null && CacheArtifacts.ReadTestResultManifest(key, manifest.Content) is { } result
                    ? await ReadSmallBlobAsync(repo, result, cancellationToken).ConfigureAwait(false)
                    : null;
            }).ConfigureAwait(false);
            if (json is not null)
            {
                Interlocked.Increment(ref _testsFound);
                return json;
            }
        }
        return null;
    }

    public void RecordTestResult(string key, byte[] json)
    {
        if (_to is not null)
        {
            _tests[key] = json;
        }
    }

    public Task FetchBlobsAsync(KilnStore store, IReadOnlyList<Descriptor> layers, CancellationToken cancellationToken = default) =>
        Task.WhenAll(layers.Where(l => !store.Content.HasBlob(l.Digest)).Select(l => FetchBlobAsync(store, l, cancellationToken)));

    private Task FetchBlobAsync(KilnStore store, Descriptor blob, CancellationToken ct)
    {
        var fetch = _fetches.GetOrAdd(blob.Digest, _ => new Lazy<Task>(() => Task.Run(async () =>
        {
            if (store.Content.HasBlob(blob.Digest))
            {
                return;
            }
            var repo = _origins.TryGetValue(blob.Digest, out var origin) ? origin
                : _from.Count > 0 ? _from[0] : throw new BuildException($"remote cache: layer {blob.Digest} is in no cache source");
            Fetches?.Report(new ImageCopyEvent(ImageCopyEventKind.Started, blob, 0));
            await Remote(repo, $"fetching layer {blob.Digest}", async () =>
            {
                var bytes = Fetches is { } fetches ? new Bytes(n => fetches.Report(new ImageCopyEvent(ImageCopyEventKind.Progress, blob, n))) : null;
                // The download checks its bytes as they are read: the writer does not hash them again.
                await using var input = await repo.Client.OpenBlobAsync(repo.Repository, blob, bytes, ct).ConfigureAwait(false);
                using var writer = store.Content.CreateBlobWriter(input);
                await input.CopyToAsync(writer, ct).ConfigureAwait(false);
                await writer.CommitAsync(blob.MediaType, blob.Digest, ct).ConfigureAwait(false);
                return true;
            }).ConfigureAwait(false);
            Interlocked.Increment(ref _blobsFetched);
            Interlocked.Add(ref _bytesFetched, blob.Size);
            Fetches?.Report(new ImageCopyEvent(ImageCopyEventKind.Copied, blob, blob.Size));
        }, ct)));
        return fetch.Value;
    }

    public async Task MaterializeAsync(KilnStore store, ImageState state, CancellationToken cancellationToken = default)
    {
        var missing = Enumerable.Range(0, state.Layers.Count).Where(i => !store.Snapshots.HasSnapshot(state.Config.RootFs.DiffIds[i])).ToList();
        if (missing.Count == 0)
        {
            return;
        }
        await FetchBlobsAsync(store, [.. missing.Select(i => state.Layers[i])], cancellationToken).ConfigureAwait(false);
        await store.Snapshots.EnsureAsync(state, _extraction, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Sends what was recorded to the target. A failure does not throw: the images are built and named by
    /// then, so it is kept as <see cref="RemoteCacheSummary.ExportError"/> for the caller to report and fail on.</summary>
    public async Task FlushAsync(KilnStore store, CancellationToken cancellationToken = default)
    {
        if (_to is not { } to)
        {
            return;
        }
        try
        {
            await PushRecordedAsync(store, to, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is BuildException or RegistryException or IOException
            || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            _exportError = e.Message;
        }
    }

    private async Task PushRecordedAsync(KilnStore store, Repo to, CancellationToken cancellationToken)
    {
        var pushes = new ConcurrentDictionary<Digest, Lazy<Task>>();
        Task PushBlob(Descriptor blob, Func<CancellationToken, Task<Stream>> open, Repo? origin) =>
            pushes.GetOrAdd(blob.Digest, _ => new Lazy<Task>(() => Task.Run(async () =>
            {
                var mountFrom = origin is not null && origin.Client.Registry == to.Client.Registry ? origin.Repository : null;
                var bytes = Pushes is { } pushes ? new Bytes(n => pushes.Report(new ImageCopyEvent(ImageCopyEventKind.Progress, blob, n))) : null;
                Pushes?.Report(new ImageCopyEvent(ImageCopyEventKind.Started, blob, 0));
                var result = await Remote(to, $"pushing blob {blob.Digest}", () =>
                    to.Client.PushBlobAsync(to.Repository, blob, open, mountFrom, bytes, cancellationToken)).ConfigureAwait(false);
                Pushes?.Report(new ImageCopyEvent(result switch
                {
                    BlobPushResult.Uploaded => ImageCopyEventKind.Copied,
                    BlobPushResult.Mounted => ImageCopyEventKind.Mounted,
                    _ => ImageCopyEventKind.Skipped,
                }, blob, blob.Size));
                if (result == BlobPushResult.Uploaded)
                {
                    Interlocked.Increment(ref _blobsPushed);
                    Interlocked.Add(ref _bytesPushed, blob.Size);
                }
                else
                {
                    Interlocked.Increment(ref _blobsSkipped);
                    if (result == BlobPushResult.Mounted)
                    {
                        Interlocked.Increment(ref _blobsMounted);
                    }
                }
            }, cancellationToken))).Value;

        Task PushLayer(Descriptor layer)
        {
            if (store.Content.HasBlob(layer.Digest))
            {
                return PushBlob(layer, _ => Task.FromResult(store.Content.OpenBlob(layer.Digest)), _origins.GetValueOrDefault(layer.Digest));
            }
            // A layer this build took from a cache source and never needed: it goes from the source to the target.
            var origin = _origins.TryGetValue(layer.Digest, out var o) ? o
                : throw new BuildException($"remote cache: layer {layer.Digest} is neither in the store nor in a cache source");
            return PushBlob(layer, async ct => await origin.Client.OpenBlobAsync(origin.Repository, layer, cancellationToken: ct).ConfigureAwait(false), origin);
        }

        async Task PushEntry(string tag, byte[] manifest, IEnumerable<Func<Task>> blobs)
        {
            var existing = await Remote(to, $"resolving {tag}", () => to.Client.ResolveManifestAsync(to.Repository, tag, cancellationToken)).ConfigureAwait(false);
            if (existing?.Digest == Digest.Compute(manifest))
            {
                Interlocked.Increment(ref _entriesPresent);
                return;
            }
            await Task.WhenAll(blobs.Select(b => b())).ConfigureAwait(false);
            await Remote(to, $"pushing {tag}", () =>
                to.Client.PutManifestAsync(to.Repository, tag, MediaTypes.ImageManifest, manifest, cancellationToken)).ConfigureAwait(false);
            Interlocked.Increment(ref _entriesPushed);
        }

        var entries = new List<Func<Task>>();
        foreach (var (key, state) in _steps)
        {
            var config = CacheArtifacts.ConfigBytes(state);
            var configDesc = CacheArtifacts.Describe(MediaTypes.ImageConfig, config);
            entries.Add(() => PushEntry(CacheArtifacts.StepTag(key), CacheArtifacts.StepManifest(key, state),
                [() => PushBlob(configDesc, _ => Task.FromResult<Stream>(new MemoryStream(config, writable: false)), null),
                    .. state.Layers.Select(l => (Func<Task>)(() => PushLayer(l)))]));
        }
        foreach (var (key, json) in _tests)
        {
            var empty = CacheArtifacts.Describe(CacheArtifacts.EmptyMediaType, CacheArtifacts.EmptyJson);
            var result = CacheArtifacts.Describe(CacheArtifacts.TestResultArtifactType, json);
            entries.Add(() => PushEntry(CacheArtifacts.TestResultTag(key), CacheArtifacts.TestResultManifest(key, json),
                [() => PushBlob(empty, _ => Task.FromResult<Stream>(new MemoryStream(CacheArtifacts.EmptyJson, writable: false)), null),
                    () => PushBlob(result, _ => Task.FromResult<Stream>(new MemoryStream(json, writable: false)), null)]));
        }
        // A few entries at once: each is a HEAD or two and a PUT, its blobs shared with the others.
        await Parallel.ForEachAsync(entries, new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = cancellationToken },
            async (entry, _) => await entry().ConfigureAwait(false)).ConfigureAwait(false);
        _steps.Clear();
        _tests.Clear();
    }

    private static async Task<RegistryManifest?> GetManifestOrNullAsync(Repo repo, string tag, CancellationToken ct)
    {
        try
        {
            return await repo.Client.GetManifestAsync(repo.Repository, tag, ct).ConfigureAwait(false);
        }
        catch (RegistryException e) when (e.Kind == RegistryErrorKind.NotFound)
        {
            return null; // no such tag, or no such repository yet
        }
    }

    /// <summary>A config or test result: small documents, read whole (at most the manifest limit).</summary>
    private static async Task<byte[]> ReadSmallBlobAsync(Repo repo, Descriptor blob, CancellationToken ct)
    {
        if (blob.Size is < 0 or > RegistryClient.MaxManifestSize)
        {
            throw RegistryException.TooLarge(repo.Name, $"blob {blob.Digest}", blob.Size, RegistryClient.MaxManifestSize);
        }
        await using var input = await repo.Client.OpenBlobAsync(repo.Repository, blob, cancellationToken: ct).ConfigureAwait(false);
        using var buffer = new MemoryStream((int)blob.Size);
        await input.CopyToAsync(buffer, ct).ConfigureAwait(false);
        return buffer.ToArray();
    }

    /// <summary>Asks a source; a source that fails (unreachable, refusing, erring) is left out for the rest of the build
    /// with one warning, so that a cache that is down costs a cold build, not a failed one.</summary>
    private async Task<T?> Lookup<T>(Repo repo, Func<Task<T?>> call) where T : class
    {
        try
        {
            return await call().ConfigureAwait(false);
        }
        catch (RegistryException e)
        {
            if (_unavailable.TryAdd(repo.Name, e.Message))
            {
                _warn?.Invoke($"remote cache {repo.Name} is unavailable, building without it: {e.Message}");
            }
            return null;
        }
    }

    /// <summary>Runs a registry call, making its failure a build failure that names the cache.</summary>
    private static async Task<T> Remote<T>(Repo repo, string what, Func<Task<T>> call)
    {
        try
        {
            return await call().ConfigureAwait(false);
        }
        catch (RegistryException e)
        {
            throw new BuildException($"remote cache {repo.Name}: {what}: {e.Message}", e);
        }
    }

    /// <summary>Reports at once, on the transferring thread: <see cref="Progress{T}"/> would post to the thread pool and
    /// could deliver a count after the blob's end.</summary>
    private sealed class Bytes(Action<long> report) : IProgress<long>
    {
        public void Report(long value) => report(value);
    }

    public void Dispose()
    {
        foreach (var client in _clients)
        {
            client.Dispose();
        }
    }
}
