using System.Text.Json;
using Kiln.Oci;

namespace Kiln.Build.Store;

/// <summary>Where the store's blobs are known to be in registries: <c>kiln/registry-blobs/HOST[_PORT].json</c> maps a
/// digest to the repository of that registry it was last pushed to or pulled from, so that a push to another repository
/// can mount the blob there rather than upload it. Only a hint: a registry that no longer has it answers the mount with
/// an upload. Each file keeps the newest <see cref="MaxEntries"/> entries and is replaced atomically; two writers at
/// once may lose each other's entries, which costs an upload, never a wrong image.</summary>
public sealed class RegistryBlobs
{
    /// <summary>Enough for the layers of many images; older entries give way.</summary>
    public const int MaxEntries = 4096;

    private readonly string _dir;
    private readonly Func<string> _newIngestPath;

    internal RegistryBlobs(string dir, Func<string> newIngestPath)
    {
        _dir = dir;
        _newIngestPath = newIngestPath;
    }

    /// <summary>The repository of <paramref name="registry"/> (<c>HOST[:PORT]</c>) that <paramref name="blob"/> was last
    /// seen in, or null. An unreadable record is no record.</summary>
    public string? RepositoryOf(string registry, Digest blob) =>
        Read(registry).LastOrDefault(e => e.Digest == blob).Repository;

    /// <summary>Records that <paramref name="blobs"/> are in <paramref name="repository"/> of <paramref name="registry"/>.</summary>
    public async Task RecordAsync(string registry, string repository, IEnumerable<Digest> blobs, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(repository);
        ArgumentNullException.ThrowIfNull(blobs);
        var added = blobs.ToHashSet();
        var entries = Read(registry).Where(e => !added.Contains(e.Digest)).Concat(added.Select(d => (d, repository))).ToList();
        if (entries.Count > MaxEntries)
        {
            entries.RemoveRange(0, entries.Count - MaxEntries);
        }
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            foreach (var (digest, repo) in entries)
            {
                w.WriteString(digest.Value, repo);
            }
            w.WriteEndObject();
        }
        try
        {
            Directory.CreateDirectory(_dir);
            await StoreFs.AtomicWriteAsync(_newIngestPath(), PathOf(registry), buffer.ToArray(), ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw StoreException.Io($"recording blobs of {registry}/{repository}", e);
        }
    }

    private List<(Digest Digest, string Repository)> Read(string registry)
    {
        var entries = new List<(Digest, string)>();
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(PathOf(registry)));
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (Digest.TryParse(p.Name, out var d) && p.Value.ValueKind == JsonValueKind.String && p.Value.GetString() is { Length: > 0 } repo)
                {
                    entries.Add((d, repo));
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or InvalidOperationException)
        {
            // Missing or unreadable: nothing is known, and the next record replaces it.
        }
        return entries;
    }

    /// <summary>A file name for a registry host: <c>:</c> before a port becomes <c>_</c>; anything else that is not a
    /// host character is refused rather than mapped, so that two registries never share a file.</summary>
    private string PathOf(string registry)
    {
        if (registry.Length == 0 || registry.Length > 255 || registry.StartsWith('.')
            || !registry.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or ':' or '[' or ']'))
        {
            throw new ArgumentException($"'{registry}' is not a registry host", nameof(registry));
        }
        return Path.Combine(_dir, registry.Replace(':', '_') + ".json");
    }
}
