using System.Text.Json;
using System.Text.Json.Serialization;

namespace Kiln.Oci;

[JsonSourceGenerationOptions(WriteIndented = false, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(Manifest))]
[JsonSerializable(typeof(ImageIndex))]
[JsonSerializable(typeof(ImageConfig))]
[JsonSerializable(typeof(Descriptor))]
[JsonSerializable(typeof(OciLayoutFile))]
internal sealed partial class OciJsonContext : JsonSerializerContext;

public sealed record OciLayoutFile
{
    [JsonPropertyName("imageLayoutVersion")]
    public string ImageLayoutVersion { get; init; } = "1.0.0";
}

/// <summary>Canonical (compact, fixed property order) JSON for OCI documents, so equal values give equal digests.</summary>
public static class OciJson
{
    // Relaxed escaping writes "+json" rather than "\u002Bjson": the same JSON, as other tools write it.
    private static readonly OciJsonContext Context = new(new JsonSerializerOptions
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });

    public static byte[] Serialize(Manifest value) => JsonSerializer.SerializeToUtf8Bytes(value, Context.Manifest);
    public static byte[] Serialize(ImageIndex value) => JsonSerializer.SerializeToUtf8Bytes(value, Context.ImageIndex);
    public static byte[] Serialize(ImageConfig value) => JsonSerializer.SerializeToUtf8Bytes(value, Context.ImageConfig);
    public static byte[] Serialize(OciLayoutFile value) => JsonSerializer.SerializeToUtf8Bytes(value, Context.OciLayoutFile);

    public static Manifest DeserializeManifest(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize(json, Context.Manifest) ?? throw new JsonException("manifest is null");
    public static ImageIndex DeserializeIndex(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize(json, Context.ImageIndex) ?? throw new JsonException("index is null");
    public static ImageConfig DeserializeConfig(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize(json, Context.ImageConfig) ?? throw new JsonException("config is null");

    // For documents that embed OCI values (Kiln's step cache entries): the same JSON, written into or read from the
    // embedding document's writer or reader (positioned on the value's first token; left on its last).
    public static void Write(Utf8JsonWriter writer, Descriptor value) => JsonSerializer.Serialize(writer, value, Context.Descriptor);
    public static void Write(Utf8JsonWriter writer, ImageConfig value) => JsonSerializer.Serialize(writer, value, Context.ImageConfig);
    public static Descriptor? ReadDescriptor(ref Utf8JsonReader reader) => JsonSerializer.Deserialize(ref reader, Context.Descriptor);
    public static ImageConfig? ReadConfig(ref Utf8JsonReader reader) => JsonSerializer.Deserialize(ref reader, Context.ImageConfig);
}
