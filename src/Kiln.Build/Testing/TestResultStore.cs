using Kiln.Build.Store;

namespace Kiln.Build.Testing;

/// <summary>Stored test results (JSON written by <see cref="TestResultJson"/>), one per image and spec, in the store's
/// <c>kiln/tests/KEY.json</c>: an image already tested with a spec is not tested again.</summary>
public sealed class TestResultStore
{
    private readonly ImageRecords _records;

    public TestResultStore(KilnStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        _records = store.ImageRecords(KilnStore.TestResultsFolder);
    }

    /// <summary>A stored test result under a 64-hex-digit key, or null.</summary>
    public byte[]? TryRead(string key)
    {
        var path = Path.Combine(_records.Dir, FileName(key));
        try
        {
            return File.Exists(path) ? File.ReadAllBytes(path) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw StoreException.Io($"reading '{path}'", e);
        }
    }

    /// <summary>Stores a test result under its key, atomically (written aside, then renamed into place).</summary>
    public async Task WriteAsync(string key, byte[] json, CancellationToken ct = default)
    {
        var name = FileName(key);
        try
        {
            await _records.WriteAsync(name, json, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw StoreException.Io($"writing '{Path.Combine(_records.Dir, name)}'", e);
        }
    }

    private static string FileName(string key)
    {
        if (key.Length != 64 || !key.All(char.IsAsciiHexDigitLower))
        {
            throw new ArgumentException($"test result key '{key}' is not 64 lowercase hex digits", nameof(key));
        }
        return key + ".json";
    }
}
