using Kiln.Oci;

namespace Kiln.Build.Store;

/// <summary>The one exception type of the store: what went wrong, where, and what to do.</summary>
public sealed class StoreException : Exception
{
    public StoreException(string message) : base(message) { }

    public StoreException(string message, Exception? inner) : base(message, inner) { }

    public static StoreException Unusable(string root, string why, Exception? inner = null) =>
        new($"store at '{root}' is unusable: {why}", inner);

    public static StoreException NotAStore(string root) =>
        new($"'{root}' is not empty and holds no 'oci-layout' file: not a Kiln store; pick an empty directory or an existing store");

    public static StoreException DigestMismatch(Digest expected, Digest actual) =>
        new($"blob digest mismatch: expected {expected}, got {actual}; the data was discarded");

    public static StoreException BlobNotFound(Digest digest) =>
        new($"blob {digest} is not in the store; pull or rebuild the image that needs it");

    public static StoreException CorruptBlob(Digest digest, Digest actual) =>
        new($"blob {digest} is corrupt (its content hashes to {actual}); run 'kiln verify' and rebuild the affected images");

    public static StoreException InvalidCacheKey(string key) =>
        new($"invalid step cache key '{Shorten(key)}': expected 64 lowercase hex digits");

    public static StoreException InvalidDigest(string text, string problem) =>
        new($"invalid digest '{Shorten(text)}': {problem}");

    public static StoreException InvalidTagName(string name) =>
        new($"invalid image name '{Shorten(name)}': use letters, digits and '._-:/+@', starting with a letter or digit, at most 255 characters");

    /// <summary>A layer's snapshot could not be made from its blob (see <see cref="Snapshots.SnapshotStore.EnsureAsync"/>).</summary>
    public static StoreException CannotExtract(Digest layer, string why, Exception? inner = null) =>
        new($"extracting layer {layer}: {why}", inner);

    public static StoreException InvalidImage(string why) => new($"invalid image: {why}");

    public static StoreException CorruptDocument(string what, string path, Exception inner) =>
        new($"{what} at '{path}' is not valid: {inner.Message}; run 'kiln verify'", inner);

    public static StoreException Io(string action, Exception inner) =>
        new($"{action} failed: {inner.Message}", inner);

    public static StoreException OutsideTemp(string path, string tmpDir, string scratchDir) =>
        new($"refusing to delete '{path}': not a directory under '{tmpDir}' or '{scratchDir}'");

    private static string Shorten(string s) => s.Length > 80 ? s[..80] + "…" : s;
}
