using System.Text.Json;
using System.Text.Json.Serialization;

namespace Kiln.Oci;

public sealed class DigestListJsonConverter : JsonConverter<IReadOnlyList<Digest>>
{
    public override IReadOnlyList<Digest> Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw new JsonException("expected an array of digests");
        }
        var list = new List<Digest>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            var text = reader.GetString();
            if (!Digest.TryParse(text, out var d, out var problem))
            {
                throw new JsonException($"invalid digest: {problem}");
            }
            list.Add(d);
        }
        return list;
    }

    public override void Write(Utf8JsonWriter writer, IReadOnlyList<Digest> value, JsonSerializerOptions options)
    {
        writer.WriteStartArray();
        foreach (var d in value)
        {
            writer.WriteStringValue(d.Value);
        }
        writer.WriteEndArray();
    }
}
