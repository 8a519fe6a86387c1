using Kiln.Oci;

namespace Kiln.Build.Store;

/// <summary>Blobs kept by name without an image: <c>kiln/pins/NAME</c> holds one digest. A pin is a root for garbage
/// collection, as a tag is; what the blob is (a service's .deb, say) is the business of the stage that pinned it.</summary>
public sealed class BlobPins
{
    private readonly string _dir;
    private readonly Func<string> _newIngestPath;

    internal BlobPins(string dir, Func<string> newIngestPath)
    {
        _dir = dir;
        _newIngestPath = newIngestPath;
    }

    /// <summary>Points <paramref name="name"/> at a blob of the store, replacing what it named (atomically).</summary>
    public async Task PinAsync(string name, Digest blob, CancellationToken ct = default)
    {
        CheckName(name);
        try
        {
            Directory.CreateDirectory(_dir);
            await StoreFs.AtomicWriteAsync(_newIngestPath(), Path.Combine(_dir, name), System.Text.Encoding.UTF8.GetBytes(blob.Value + "\n"), ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw StoreException.Io($"pinning '{name}'", e);
        }
    }

    /// <summary>The blob <paramref name="name"/> pins, or null.</summary>
    public Digest? TryGet(string name)
    {
        CheckName(name);
        var path = Path.Combine(_dir, name);
        try
        {
            return File.Exists(path) && Digest.TryParse(File.ReadAllText(path).Trim(), out var d) ? d : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw StoreException.Io($"reading '{path}'", e);
        }
    }

    /// <summary>Every pinned blob (unreadable pins are passed over).</summary>
    public IReadOnlyList<Digest> All() =>
        Directory.Exists(_dir)
            ? [.. Directory.EnumerateFiles(_dir).Select(f => Digest.TryParse(File.ReadAllText(f).Trim(), out var d) ? d : (Digest?)null).OfType<Digest>()]
            : [];

    private static void CheckName(string name)
    {
        if (name.Length == 0 || name.Length > 200 || name.StartsWith('.') || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
        {
            throw new ArgumentException($"pin name '{name}' is not valid (letters, digits, '.', '_', '-')", nameof(name));
        }
    }
}
