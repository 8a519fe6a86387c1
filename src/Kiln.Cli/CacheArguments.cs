using Kiln.Build.Definition;
using Kiln.Build.Distribution;
using Kiln.Build.Execution;
using Kiln.Oci.Registry;

namespace Kiln.Cli;

/// <summary><c>kiln build --cache-from REF --cache-to REF [--insecure]</c>: checks the references, and gives the build
/// one remote cache for them and the definition's <c>cache:</c>, disposed of with this.</summary>
internal sealed class CacheArguments : IDisposable
{
    private readonly IReadOnlyList<string> _from;
    private readonly string? _to;
    private readonly bool _insecure;
    private readonly Lock _lock = new();
    private RegistryCache? _cache;
    private bool _made;

    public CacheArguments(IReadOnlyList<string> from, string? to, bool insecure)
    {
        foreach (var (option, reference) in from.Select(f => ("--cache-from", (string?)f)).Append(("--cache-to", to)))
        {
            if (reference is not null && CacheDefinition.RepositoryProblem(reference) is { } problem)
            {
                throw new UsageException($"kiln build: {option}: {problem}");
            }
        }
        _from = from;
        _to = to;
        _insecure = insecure;
    }

    /// <summary>Where the cache's warnings go (a source left out after it failed).</summary>
    public Action<string>? Warn { get; set; }

    /// <summary>Where the cache's layer fetches and pushes show their progress.</summary>
    public IProgress<Kiln.Oci.Image.ImageCopyEvent>? Fetches { get; set; }

    public IProgress<Kiln.Oci.Image.ImageCopyEvent>? Pushes { get; set; }

    /// <summary>The build's remote cache (the same one each time it is asked), or null without references.</summary>
    public IRemoteCache? For(KilnFile file)
    {
        lock (_lock)
        {
            if (!_made)
            {
                _cache = RegistryCache.For(_from, _to, file.Cache, Open, warn: Warn, locate: r => RegistryAccess.Locate("build", r));
                if (_cache is not null)
                {
                    _cache.Fetches = Fetches;
                    _cache.Pushes = Pushes;
                }
                _made = true;
            }
            return _cache;
        }
    }

    /// <summary>A client as push and pull open one (see <see cref="RegistryAccess"/>).</summary>
    private RegistryClient Open(string registry) => RegistryAccess.Open(registry, _insecure);

    public void Dispose()
    {
        lock (_lock)
        {
            _cache?.Dispose();
        }
    }
}
