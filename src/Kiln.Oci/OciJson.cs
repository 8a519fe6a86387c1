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
    public static byte[] Serialize(Manifest value) => JsonSerializer.SerializeToUtf8Bytes(value, OciJsonContext.Default.Manifest);
    public static byte[] Serialize(ImageIndex value) => JsonSerializer.SerializeToUtf8Bytes(value, OciJsonContext.Default.ImageIndex);
    public static byte[] Serialize(ImageConfig value) => JsonSerializer.SerializeToUtf8Bytes(value, OciJsonContext.Default.ImageConfig);
    public static byte[] Serialize(OciLayoutFile value) => JsonSerializer.SerializeToUtf8Bytes(value, OciJsonContext.Default.OciLayoutFile);

    public static Manifest DeserializeManifest(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize(json, OciJsonContext.Default.Manifest) ?? throw new JsonException("manifest is null");
    public static ImageIndex DeserializeIndex(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize(json, OciJsonContext.Default.ImageIndex) ?? throw new JsonException("index is null");
    public static ImageConfig DeserializeConfig(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize(json, OciJsonContext.Default.ImageConfig) ?? throw new JsonException("config is null");
}
