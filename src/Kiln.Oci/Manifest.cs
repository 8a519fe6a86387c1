using System.Text.Json.Serialization;

namespace Kiln.Oci;

public sealed record Manifest
{
    [JsonPropertyName("schemaVersion")]
    public int SchemaVersion { get; init; } = 2;

    /// <summary>Optional in the document (the descriptor that names it is what counts); null when absent.</summary>
    [JsonPropertyName("mediaType")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? MediaType { get; init; } = MediaTypes.ImageManifest;

    [JsonPropertyName("config")]
    public required Descriptor Config { get; init; }

    [JsonPropertyName("layers")]
    public required IReadOnlyList<Descriptor> Layers { get; init; }

    [JsonPropertyName("annotations")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyDictionary<string, string>? Annotations { get; init; }
}

/// <summary>An OCI image index (or Docker manifest list): <c>manifests</c> read absent or null as empty.</summary>
public sealed record ImageIndex
{
    private readonly IReadOnlyList<Descriptor>? _manifests;

    [JsonPropertyName("schemaVersion")]
    public int SchemaVersion { get; init; } = 2;

    /// <summary>Optional in the document; null when absent.</summary>
    [JsonPropertyName("mediaType")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? MediaType { get; init; } = MediaTypes.ImageIndex;

    [JsonPropertyName("manifests")]
    public IReadOnlyList<Descriptor> Manifests { get => _manifests ?? []; init => _manifests = value; }
}
