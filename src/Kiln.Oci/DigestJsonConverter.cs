using System.Text.Json;
using System.Text.Json.Serialization;

namespace Kiln.Oci;

public sealed class DigestJsonConverter : JsonConverter<Digest>
{
    public override Digest Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var text = reader.GetString();
        if (!Digest.TryParse(text, out var digest, out var problem))
        {
            throw new JsonException($"invalid digest: {problem}");
        }
        return digest;
    }

    public override void Write(Utf8JsonWriter writer, Digest value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.Value);
}
