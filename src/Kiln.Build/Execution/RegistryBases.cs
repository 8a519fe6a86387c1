using Kiln.Build.Definition;
using Kiln.Build.Store;
using Kiln.Oci;
using Kiln.Oci.Image;
using Kiln.Oci.Layout;
using Kiln.Oci.Registry;

namespace Kiln.Build.Execution;

/// <summary>The registry images a build starts from (<c>from: HOST/REPO[:TAG|@DIGEST]</c>). Each is pinned: the store
/// names the image it pulled by the reference as written, and later builds use that image without asking the
/// registry, until <see cref="BuildOptions.Refresh"/> resolves the reference again. One instance serves one build, so
/// that the digest the plan keyed a base by is the digest the build pulls.</summary>
/// <param name="storeRoot">The store whose pins are read; null: none (planning without a store).</param>
public sealed class RegistryBases(string? storeRoot, BuildOptions options)
{
    private readonly Dictionary<string, Resolved> _resolved = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _pulling = new(1, 1);

    private sealed class Resolved(Descriptor manifest, bool pinned)
    {
        public Descriptor Manifest { get; } = manifest;
        public bool Pinned { get; set; } = pinned;
    }

    /// <summary>The manifest digest <paramref name="source"/> stands for (the plan's identity of the base): the store's
    /// pin, or without one (or under --refresh) what the registry names now for the build's platform.</summary>
    /// <exception cref="DefinitionException">The registry has no such image, or none for the platform.</exception>
    /// <exception cref="BuildException">The registry could not be asked (unreachable, authentication failed).</exception>
    public string Identity(RegistrySource source) => Resolve(source).Manifest.Digest.Value;

    /// <summary>The manifest the build uses for <paramref name="source"/>.</summary>
    public Descriptor Manifest(RegistrySource source) => Resolve(source).Manifest;

    private Resolved Resolve(RegistrySource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        lock (_resolved)
        {
            if (_resolved.TryGetValue(source.Reference, out var known))
            {
                return known;
            }
        }
        var resolved = (options.Refresh ? null : Pinned(source.Reference)) is { } pinned
            ? new Resolved(pinned, true)
            : new Resolved(ResolveRemote(source), false);
        lock (_resolved)
        {
            return _resolved.TryAdd(source.Reference, resolved) ? resolved : _resolved[source.Reference];
        }
    }

    /// <summary>The store's pin: it is an OCI layout whose index.json names images, read here without opening the
    /// store (planning leaves the store alone).</summary>
    private Descriptor? Pinned(string reference)
    {
        if (storeRoot is null || !File.Exists(Path.Combine(storeRoot, "index.json")))
        {
            return null;
        }
        try
        {
            var tagged = new LayoutImageSource(storeRoot).ResolveAsync(reference).GetAwaiter().GetResult();
            return MediaTypes.IsManifest(tagged.MediaType) ? tagged : null;
        }
        catch (ImageException)
        {
            return null;
        }
    }

    private Descriptor ResolveRemote(RegistrySource source)
    {
        var reference = Locate(source);
        using var client = Open(reference.Registry);
        var registry = new RegistryImageSource(client, reference.Repository);
        try
        {
            var top = registry.ResolveAsync(reference.Reference).GetAwaiter().GetResult();
            return IndexSelection.ResolveAsync(top, options.Platform, (d, ct) => ImageReader.ReadDocumentAsync(registry, d, ct), registry.Name)
                .GetAwaiter().GetResult();
        }
        catch (RegistryException ex) when (ex.Kind is RegistryErrorKind.NotFound or RegistryErrorKind.BadInput)
        {
            throw DefinitionException.At(source.Mark, $"from {source.Reference}: {ex.Message}");
        }
        catch (ImageException ex)
        {
            throw DefinitionException.At(source.Mark, $"from {source.Reference}: {ex.Message}");
        }
        catch (RegistryException ex)
        {
            throw new BuildException($"from {source.Reference}: {ex.Message}", ex);
        }
    }

    /// <summary>Where <paramref name="source"/> is fetched from: registries.conf may move its namespace.</summary>
    private ImageReference Locate(RegistrySource source)
    {
        var reference = ImageReference.Parse(source.Reference);
        return options.LocateRegistry?.Invoke(reference) ?? reference;
    }

    private RegistryClient Open(string registry) => options.OpenRegistry?.Invoke(registry) ?? new RegistryClient(registry);

    /// <summary>The base's state: pulled into the store first unless pinned there (blobs checked; its layers are
    /// extracted when a step first runs on them), then named by its reference, which pins it for later builds.</summary>
    public async Task<ImageState> ImportAsync(KilnStore store, RegistrySource source, IProgress<ImageCopyEvent>? progress,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        var resolved = Resolve(source);
        await _pulling.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (resolved.Pinned)
            {
                return await OciImport.FromStoreAsync(store, source.Reference, resolved.Manifest, cancellationToken).ConfigureAwait(false);
            }
            var reference = Locate(source);
            using var client = Open(reference.Registry);
            try
            {
                var (_, state) = await ImagePull.PullAsync(store, new RegistryImageSource(client, reference.Repository), resolved.Manifest,
                    source.Reference, options.Platform, progress, cancellationToken).ConfigureAwait(false);
                resolved.Pinned = true;
                return state;
            }
            catch (Exception ex) when (ex is RegistryException or ImageException)
            {
                throw new BuildException($"from {source.Reference}: {ex.Message}", ex);
            }
        }
        finally
        {
            _pulling.Release();
        }
    }

    /// <summary>Whether the store names the image <paramref name="source"/> resolved to (a build whose base came
    /// from the step cache still pins it, with <see cref="ImportAsync"/>).</summary>
    public bool IsPinned(RegistrySource source) => Resolve(source).Pinned;
}
