using Kiln.Oci;

namespace Kiln.Build.Store;

/// <summary>Images kept by name without a tag: <c>kiln/roots/NAME</c> lists image manifest digests, one a line. gc
/// keeps each as it keeps a tagged image (manifest, config, layers, snapshots, referrers); what keeps them there (a
/// release target serving a digest whose name has moved on, say) is the business of the stage that wrote them.</summary>
public sealed class ImageRoots
{
    private readonly string _dir;
    private readonly Func<string> _newIngestPath;

    internal ImageRoots(string dir, Func<string> newIngestPath)
    {
        _dir = dir;
        _newIngestPath = newIngestPath;
    }

    /// <summary>Makes <paramref name="name"/> keep exactly <paramref name="manifests"/> (atomically); none removes it.</summary>
    public async Task SetAsync(string name, IEnumerable<Digest> manifests, CancellationToken ct = default)
    {
        CheckName(name);
        ArgumentNullException.ThrowIfNull(manifests);
        var path = Path.Combine(_dir, name);
        var lines = manifests.Select(d => d.Value).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        try
        {
            if (lines.Count == 0)
            {
                File.Delete(path);
                return;
            }
            Directory.CreateDirectory(_dir);
            await StoreFs.AtomicWriteAsync(_newIngestPath(), path, System.Text.Encoding.UTF8.GetBytes(string.Concat(lines.Select(l => l + "\n"))), ct)
                .ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw StoreException.Io($"writing the image root '{name}'", e);
        }
    }

    /// <summary>The manifests <paramref name="name"/> keeps (none when it does not exist).</summary>
    public IReadOnlyList<Digest> Get(string name)
    {
        CheckName(name);
        return Read(Path.Combine(_dir, name));
    }

    /// <summary>Every rooted manifest, with the root that keeps it (unreadable lines are passed over).</summary>
    public IReadOnlyList<(string Name, Digest Manifest)> All() =>
        Directory.Exists(_dir)
            ? [.. Directory.EnumerateFiles(_dir).Order(StringComparer.Ordinal).SelectMany(f => Read(f).Select(d => (Path.GetFileName(f), d)))]
            : [];

    private static IReadOnlyList<Digest> Read(string path)
    {
        try
        {
            return File.Exists(path)
                ? [.. File.ReadAllLines(path).Select(l => Digest.TryParse(l.Trim(), out var d) ? d : (Digest?)null).OfType<Digest>()]
                : [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw StoreException.Io($"reading '{path}'", e);
        }
    }

    private static void CheckName(string name)
    {
        if (name.Length == 0 || name.Length > 200 || name.StartsWith('.') || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
        {
            throw new ArgumentException($"image root name '{name}' is not valid (letters, digits, '.', '_', '-')", nameof(name));
        }
    }
}
