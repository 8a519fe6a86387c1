using System.Buffers;
using System.Text.Json;
using Kiln.Oci;

namespace Kiln.Build.Store.Steps;

/// <summary>A step cache file, <c>kiln/steps/KEY.json</c>:
/// <c>{"schemaVersion":1,"state":{"layers":[DESCRIPTOR, ...],"config":CONFIG}}</c>, the descriptors and the config in
/// OCI's JSON (<see cref="OciJson"/>), and <c>"unpackedOnUse":true</c> for an entry whose layers need not be extracted
/// (a remote cache's hit). Versioned so a later Kiln can recognise (and ignore) old entries.</summary>
/// <remarks>Written and read by hand around <see cref="OciJson"/> rather than by a serializer context of its own: such a
/// context built its own metadata for every OCI type again, which with the JSON serializer's first-use work took 1.5–3 ms
/// of a build's first cache lookup (the image's documents need OciJson's anyway).</remarks>
internal static class StepEntryJson
{
    private static readonly JsonWriterOptions WriterOptions = new()
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static byte[] Write(ImageState state, bool unpackedOnUse = false)
    {
        var buffer = new ArrayBufferWriter<byte>(2048);
        using (var w = new Utf8JsonWriter(buffer, WriterOptions))
        {
            w.WriteStartObject();
            w.WriteNumber("schemaVersion", 1);
            w.WriteStartObject("state");
            w.WriteStartArray("layers");
            foreach (var layer in state.Layers)
            {
                OciJson.Write(w, layer);
            }
            w.WriteEndArray();
            w.WritePropertyName("config");
            OciJson.Write(w, state.Config);
            w.WriteEndObject();
            if (unpackedOnUse)
            {
                w.WriteBoolean("unpackedOnUse", true);
            }
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>The entry's state, or null when it is not one this Kiln wrote: another schema version, members
    /// missing or null (JSON nulls bypass the records' non-nullable declarations), layers and diff_ids that do not
    /// pair up, or not JSON. Unknown members are skipped.</summary>
    public static ImageState? Read(ReadOnlySpan<byte> json) => Read(json, out _);

    /// <inheritdoc cref="Read(ReadOnlySpan{byte})"/>
    /// <param name="unpackedOnUse">Whether the entry counts without its snapshots (see <see cref="StepCache"/>).</param>
    public static ImageState? Read(ReadOnlySpan<byte> json, out bool unpackedOnUse)
    {
        unpackedOnUse = false;
        try
        {
            var reader = new Utf8JsonReader(json);
            int? version = null;
            ImageState? state = null;
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return null;
            }
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("schemaVersion"u8))
                {
                    reader.Read();
                    version = reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out int v) ? v : -1;
                }
                else if (reader.ValueTextEquals("state"u8))
                {
                    reader.Read();
                    state = ReadState(ref reader);
                }
                else if (reader.ValueTextEquals("unpackedOnUse"u8))
                {
                    reader.Read();
                    unpackedOnUse = reader.TokenType == JsonTokenType.True;
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }
            if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
            {
                return null; // not one object (a second value after it makes the reader throw)
            }
            // ReadState gives layers and a config, or nothing; a JSON null inside them still gets here.
            return version == 1 && state is { Config.RootFs.DiffIds: not null }
                && state.Layers.All(l => l is not null && l.Digest.Value is not null)
                && state.Config.RootFs.DiffIds.Count == state.Layers.Count
                ? state
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static ImageState? ReadState(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return null;
        }
        List<Descriptor>? layers = null;
        ImageConfig? config = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("layers"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartArray)
                {
                    reader.Skip();
                    continue;
                }
                layers = [];
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    layers.Add(OciJson.ReadDescriptor(ref reader)!);
                }
            }
            else if (reader.ValueTextEquals("config"u8))
            {
                reader.Read();
                config = OciJson.ReadConfig(ref reader);
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
        return layers is null || config is null ? null : new ImageState { Layers = layers, Config = config };
    }
}
