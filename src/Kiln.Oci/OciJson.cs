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

    // The reader accepts null for a required member (only its absence fails): those are refused here, so that a
    // document that reads is one whose required members hold values.
    public static Manifest DeserializeManifest(ReadOnlySpan<byte> json)
    {
        var m = JsonSerializer.Deserialize(json, Context.Manifest) ?? throw new JsonException("manifest is null");
        Require(m.Config, "config");
        Require(m.Layers, "layers");
        for (int i = 0; i < m.Layers.Count; i++)
        {
            Require(m.Layers[i], $"layers[{i}]");
        }
        return m;
    }

    public static ImageIndex DeserializeIndex(ReadOnlySpan<byte> json)
    {
        var index = JsonSerializer.Deserialize(json, Context.ImageIndex) ?? throw new JsonException("index is null");
        for (int i = 0; i < index.Manifests.Count; i++)
        {
            Require(index.Manifests[i], $"manifests[{i}]");
        }
        return index;
    }

    public static ImageConfig DeserializeConfig(ReadOnlySpan<byte> json)
    {
        var c = JsonSerializer.Deserialize(json, Context.ImageConfig) ?? throw new JsonException("config is null");
        Require(c.Architecture, "architecture");
        Require(c.Os, "os");
        Require(c.RootFs, "rootfs");
        Require(c.RootFs.DiffIds, "rootfs.diff_ids");
        // Arrays of strings or objects whose members are null are not what the spec allows, and would reach
        // code that reads the strings (the environment, the command, `kiln history`).
        RequireEach(c.History, "history");
        RequireEach(c.Config.Env, "config.Env");
        RequireEach(c.Config.Entrypoint, "config.Entrypoint");
        RequireEach(c.Config.Cmd, "config.Cmd");
        RequireEach(c.Config.Labels?.Values, "config.Labels");
        return c;
    }

    private static void RequireEach<T>(IEnumerable<T?>? values, string name)
    {
        if (values is not null && values.Any(v => v is null))
        {
            throw new JsonException($"'{name}' holds a null");
        }
    }

    private static void Require(object? value, string name)
    {
        if (value is null)
        {
            throw new JsonException($"'{name}' is missing or null");
        }
    }

    private static void Require(Descriptor? d, string name)
    {
        Require((object?)d, name);
        Require(d!.MediaType, name + ".mediaType");
        if (d.Platform is { } p)
        {
            Require(p.Architecture, name + ".platform.architecture");
            Require(p.Os, name + ".platform.os");
        }
    }

    // For documents that embed OCI values (Kiln's step cache entries): the same JSON, written into or read from the
    // embedding document's writer or reader (positioned on the value's first token; left on its last).
    public static void Write(Utf8JsonWriter writer, Descriptor value) => JsonSerializer.Serialize(writer, value, Context.Descriptor);
    public static void Write(Utf8JsonWriter writer, ImageConfig value) => JsonSerializer.Serialize(writer, value, Context.ImageConfig);
    public static Descriptor? ReadDescriptor(ref Utf8JsonReader reader) => JsonSerializer.Deserialize(ref reader, Context.Descriptor);
    public static ImageConfig? ReadConfig(ref Utf8JsonReader reader) => JsonSerializer.Deserialize(ref reader, Context.ImageConfig);
}
