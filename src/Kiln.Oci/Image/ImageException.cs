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

    public static ImageException Mismatch(string where, Descriptor descriptor, Digest actual) =>
        new($"{where}: blob {descriptor.Digest} does not match its digest (its content hashes to {actual})");
}
