namespace Kiln.Build.Layers;

/// <summary>A layer could not be packed, extracted, copied into or resolved; <see cref="EntryName"/> names the culprit.
/// An <see cref="IOException"/> (InvalidDataException is sealed); catch this type for every layer problem.</summary>
public sealed class LayerException : IOException
{
    private LayerException(string message, string? entryName, Exception? inner = null)
        : base(message, inner) => EntryName = entryName;

    /// <summary>The tar entry or image path at fault, when there is one.</summary>
    public string? EntryName { get; }

    internal static LayerException BadEntry(string entryName, string problem) =>
        new($"layer entry '{entryName}': {problem}", entryName);

    internal static LayerException Truncated(string? entryName) =>
        new(entryName is null
            ? "layer is truncated: the tar stream ends before its end-of-archive marker"
            : $"layer is truncated inside entry '{entryName}'", entryName);

    internal static LayerException Corrupt(string problem) => new($"corrupt layer: {problem}", null);

    internal static LayerException BadPath(string path, string problem) =>
        new($"path '{path}': {problem}", path);

    internal static LayerException Wrap(string context, Exception inner) =>
        new($"{context}: {inner.Message}", null, inner);
}
