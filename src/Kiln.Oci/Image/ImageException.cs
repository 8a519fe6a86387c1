namespace Kiln.Oci.Image;

/// <summary>An image cannot be found in what was given: no entry of an index runs on the platform, a document is not
/// the kind its descriptor names, indexes nest too deep. The message names the source and what is there.</summary>
public sealed class ImageException : Exception
{
    private ImageException(string message, Exception? inner = null) : base(message, inner) { }

    public static ImageException NoPlatform(string where, Descriptor index, Platform platform, IEnumerable<string> available)
    {
        var list = available.Distinct(StringComparer.Ordinal).ToList();
        return new($"{where}: the index {index.Digest} has no image for this host's platform ({platform}); "
            + (list.Count == 0 ? "it lists no image" : "it has " + string.Join(", ", list)));
    }

    public static ImageException NotAnImage(string where, Descriptor descriptor) =>
        new($"{where}: '{descriptor.MediaType}' ({descriptor.Digest}) is not an image manifest or index");

    public static ImageException TooDeep(string where, int depth) =>
        new($"{where}: image indexes nest more than {depth} deep");

    public static ImageException BadDocument(string where, string what, Descriptor descriptor, Exception inner) =>
        new($"{where}: the {what} {descriptor.Digest} is not valid: {inner.Message}", inner);

    public static ImageException TooLarge(string where, Descriptor descriptor, long max) =>
        new($"{where}: blob {descriptor.Digest} claims {descriptor.Size} bytes; a manifest, index or config may have at most {max >> 20} MiB");

    public static ImageException SizeMismatch(string where, Descriptor descriptor, long actual) =>
        new(actual > descriptor.Size
            ? $"{where}: blob {descriptor.Digest} is longer than the {descriptor.Size} bytes its descriptor says"
            : $"{where}: blob {descriptor.Digest} ended after {actual} bytes; its descriptor says {descriptor.Size}");

    public static ImageException WrongSize(string where, Descriptor descriptor, long actual) =>
        new($"{where}: blob {descriptor.Digest} is {actual} bytes, its descriptor says {descriptor.Size}");

    public static ImageException MissingBlob(string where, Digest digest) => new($"{where}: blob {digest} is missing");

    public static ImageException NoTag(string where, int count, IEnumerable<string> tags) =>
        new(count == 0 ? $"{where}: the layout lists no image" : $"{where}: holds {count} images; name one with {where}:TAG (tags: {string.Join(", ", tags)})");

    public static ImageException NoSuchTag(string where, string tag, IEnumerable<string> tags) =>
        new($"{where}: no image tagged '{tag}' (tags: {string.Join(", ", tags)})");

    public static ImageException NotALayout(string where, string why) => new($"{where}: not an OCI image layout ({why})");

    public static ImageException BadFile(string where, string file, Exception inner) =>
        new($"{where}: the {file} is not valid: {inner.Message}", inner);

    public static ImageException TwoSizes(string where, Descriptor manifest, Descriptor first, Descriptor second) =>
        new($"{where}: manifest {manifest.Digest} gives blob {first.Digest} two sizes ({first.Size} and {second.Size})");

    public static ImageException Io(string where, string what, Exception inner) => new($"{where}: {what}: {inner.Message}", inner);

    public static ImageException Mismatch(string where, Descriptor descriptor, Digest actual) =>
        new($"{where}: blob {descriptor.Digest} does not match its digest (its content hashes to {actual})");
}
