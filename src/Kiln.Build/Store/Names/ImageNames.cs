using System.Text.Json;
using Kiln.Build.Store.Content;
using Kiln.Oci;

namespace Kiln.Build.Store.Names;

/// <summary>Image names: the OCI layout's <c>index.json</c>, one manifest descriptor per name (annotated with
/// <c>org.opencontainers.image.ref.name</c>). The file is only ever replaced by rename, under <c>kiln/index.lock</c>.
/// A name is a root for garbage collection: what it points at, and what that needs, is kept.</summary>
public sealed class ImageNames
{
    private readonly ContentStore _content;
    private readonly string _indexLockPath;
    private readonly Func<string> _newIngestPath;

    internal ImageNames(string root, string kilnDir, ContentStore content, Func<string> newIngestPath)
    {
        IndexPath = Path.Combine(root, "index.json");
        _indexLockPath = Path.Combine(kilnDir, "index.lock");
        _content = content;
        _newIngestPath = newIngestPath;
    }

    /// <summary>The layout's <c>index.json</c>.</summary>
    public string IndexPath { get; }

    /// <summary>Writes an empty index when there is none (a new store, or an Open interrupted before it).</summary>
    internal void EnsureIndex(Action<string, byte[]> atomicWrite)
    {
        using (FileLock.Acquire(_indexLockPath, exclusive: true, CancellationToken.None))
        {
            if (!File.Exists(IndexPath))
            {
                atomicWrite(IndexPath, OciJson.Serialize(new ImageIndex()));
            }
        }
    }

    /// <summary>Points <paramref name="name"/> at a manifest in <c>index.json</c>, replacing any previous target.</summary>
    public async Task TagAsync(string name, Descriptor manifest, CancellationToken ct = default)
    {
        CheckTagName(name);
        ArgumentNullException.ThrowIfNull(manifest);
        if (!_content.HasBlob(manifest.Digest))
        {
            throw StoreException.BlobNotFound(manifest.Digest);
        }
        var annotations = new Dictionary<string, string>(StringComparer.Ordinal);
        if (manifest.Annotations is not null)
        {
            foreach (var (k, v) in manifest.Annotations)
            {
                annotations[k] = v;
            }
        }
        annotations[Annotations.RefName] = name;
        var entry = manifest with { Annotations = annotations };
        await UpdateIndexAsync(list =>
        {
            list.RemoveAll(d => RefName(d) == name);
            list.Add(entry);
        }, ct).ConfigureAwait(false);
    }

    /// <summary>Removes <paramref name="name"/> from <c>index.json</c>; returns false if it was not there.</summary>
    public async Task<bool> UntagAsync(string name, CancellationToken ct = default)
    {
        CheckTagName(name);
        bool removed = false;
        await UpdateIndexAsync(list => removed = list.RemoveAll(d => RefName(d) == name) > 0, ct).ConfigureAwait(false);
        return removed;
    }

    /// <summary>Adds a manifest to <c>index.json</c> without a name (an artifact that refers to an image, kept while
    /// its subject is: see gc); an entry of the same digest is replaced, and so are the unnamed entries
    /// <paramref name="replaces"/> names (in the same update).</summary>
    public async Task AddUntaggedAsync(Descriptor manifest, CancellationToken ct = default, IReadOnlySet<Digest>? replaces = null)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        if (!_content.HasBlob(manifest.Digest))
        {
            throw StoreException.BlobNotFound(manifest.Digest);
        }
        await UpdateIndexAsync(list =>
        {
            list.RemoveAll(d => RefName(d) is null && (d.Digest == manifest.Digest || replaces?.Contains(d.Digest) == true));
            list.Add(manifest);
        }, ct).ConfigureAwait(false);
    }

    /// <summary>The entries of <c>index.json</c> without a name.</summary>
    public IReadOnlyList<Descriptor> ListUntagged() => [.. ReadIndex().Manifests.Where(d => RefName(d) is null)];

    /// <summary>Removes the unnamed entries <paramref name="drop"/> says to; returns how many went.</summary>
    internal async Task<int> RemoveUntaggedAsync(Func<Descriptor, bool> drop, CancellationToken ct = default)
    {
        int removed = 0;
        await UpdateIndexAsync(list => removed = list.RemoveAll(d => RefName(d) is null && drop(d)), ct).ConfigureAwait(false);
        return removed;
    }

    public IReadOnlyList<(string Name, Descriptor Manifest)> ListTags() =>
        ReadIndex().Manifests
            .Where(d => RefName(d) is not null)
            .Select(d => (RefName(d)!, d))
            .OrderBy(t => t.Item1, StringComparer.Ordinal)
            .ToList();

    public Descriptor? TryGetTag(string name)
    {
        CheckTagName(name);
        return ReadIndex().Manifests.FirstOrDefault(d => RefName(d) == name);
    }

    private static string? RefName(Descriptor d) =>
        d.Annotations is not null && d.Annotations.TryGetValue(Annotations.RefName, out var n) ? n : null;

    /// <summary>index.json is only ever replaced by rename, so reading it needs no lock.</summary>
    private ImageIndex ReadIndex()
    {
        try
        {
            return OciJson.DeserializeIndex(File.ReadAllBytes(IndexPath));
        }
        catch (JsonException e)
        {
            throw StoreException.CorruptDocument("index", IndexPath, e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw StoreException.Io($"reading '{IndexPath}'", e);
        }
    }

    private async Task UpdateIndexAsync(Action<List<Descriptor>> change, CancellationToken ct)
    {
        using var indexLock = await FileLock.AcquireAsync(_indexLockPath, exclusive: true, ct).ConfigureAwait(false);
        var index = ReadIndex();
        var list = index.Manifests.ToList();
        change(list);
        // Sorted by name (untagged entries first, by digest) so equal contents give equal bytes.
        list.Sort((a, b) =>
        {
            int byName = string.CompareOrdinal(RefName(a), RefName(b));
            return byName != 0 ? byName : string.CompareOrdinal(a.Digest.Value, b.Digest.Value);
        });
        var bytes = OciJson.Serialize(index with { Manifests = list });
        if (File.Exists(IndexPath) && bytes.AsSpan().SequenceEqual(File.ReadAllBytes(IndexPath)))
        {
            return; // unchanged (a no-op rebuild re-tags each image): spare the fsyncs of a rewrite
        }
        try
        {
            await StoreFs.AtomicWriteAsync(_newIngestPath(), IndexPath, bytes, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw StoreException.Io($"writing '{IndexPath}'", e);
        }
    }

    /// <summary>Image names: what OCI allows in a ref name minus anything that could confuse a shell or a path.</summary>
    public static bool IsValidTagName(string? name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > 255 || !char.IsAsciiLetterOrDigit(name[0]))
        {
            return false;
        }
        foreach (char c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' or ':' or '/' or '+' or '@'))
            {
                return false;
            }
        }
        return true;
    }

    internal static void CheckTagName(string name)
    {
        if (!IsValidTagName(name))
        {
            throw StoreException.InvalidTagName(name ?? "");
        }
    }
}
