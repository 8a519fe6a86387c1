namespace Kiln.Build.Store;

public sealed partial class KilnStore
{
    private string TestResultsDir => Path.Combine(_kilnDir, "tests");

    /// <summary>A stored test result (JSON written by Kiln.Build.Testing) under a 64-hex-digit key, or null.</summary>
    public byte[]? TryReadTestResult(string key)
    {
        var path = TestResultPath(key);
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
    public async Task WriteTestResultAsync(string key, byte[] json, CancellationToken ct = default)
    {
        var path = TestResultPath(key);
        try
        {
            Directory.CreateDirectory(TestResultsDir);
            await StoreFs.AtomicWriteAsync(NewIngestPath(), path, json, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw StoreException.Io($"writing '{path}'", e);
        }
    }

    private string TestResultPath(string key)
    {
        if (key.Length != 64 || !key.All(char.IsAsciiHexDigitLower))
        {
            throw new ArgumentException($"test result key '{key}' is not 64 lowercase hex digits", nameof(key));
        }
        return Path.Combine(TestResultsDir, key + ".json");
    }
}
