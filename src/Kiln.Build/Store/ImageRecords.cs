using Kiln.Build.Store.Content;
using Kiln.Oci;

namespace Kiln.Build.Store;

/// <summary>A folder of records a stage keeps about images, <c>kiln/FOLDER/NAME.json</c>: the stage owns their
/// format and meaning; the store owns where they live and that each has a top-level <c>manifest</c> field naming
/// the image's manifest digest, so that gc can drop the records of images that are gone.</summary>
public sealed class ImageRecords
{
    private readonly Func<string> _newIngestPath;

    internal ImageRecords(string dir, Func<string> newIngestPath)
    {
        Dir = dir;
        _newIngestPath = newIngestPath;
    }

    public string Dir { get; }

    /// <summary>Writes a record atomically (aside, fsynced, renamed into place), creating the folder if needed. I/O
    /// errors are the caller's to wrap.</summary>
    public async Task WriteAsync(string fileName, ReadOnlyMemory<byte> json, CancellationToken ct = default)
    {
        Directory.CreateDirectory(Dir);
        await StoreFs.AtomicWriteAsync(_newIngestPath(), Path.Combine(Dir, fileName), json, ct).ConfigureAwait(false);
    }

    /// <summary>Under the exclusive store lock: deletes the records whose image manifest is no longer in
    /// <paramref name="content"/>, and those that do not parse (a torn record is useless): nothing can look them up again.</summary>
    internal int Collect(ContentStore content)
    {
        if (!Directory.Exists(Dir))
        {
            return 0;
        }
        int removed = 0;
        foreach (var file in Directory.EnumerateFiles(Dir, "*.json").ToList())
        {
            string? manifest = null;
            try
            {
                using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(file));
                manifest = doc.RootElement.TryGetProperty("manifest", out var m) ? m.GetString() : null;
            }
            catch (System.Text.Json.JsonException)
            {
                // Unreadable: a torn record is useless, drop it.
            }
            if (manifest is null || !Digest.TryParse(manifest, out var d) || !content.HasBlob(d))
            {
                File.Delete(file);
                removed++;
            }
        }
        if (removed > 0)
        {
            Native.FsyncDirectory(Dir);
        }
        return removed;
    }
}
