using System.Text.Json.Serialization;

namespace Kiln.Build.Store;

/// <summary>A step cache file: versioned so a later Kiln can recognise (and ignore) old entries.</summary>
internal sealed record StepEntry
{
    [JsonPropertyName("schemaVersion")]
    public int SchemaVersion { get; init; } = 1;

    [JsonPropertyName("state")]
    public required ImageState State { get; init; }
}

// The OCI records carry their own JsonPropertyName and converters; the policy only names ImageState's members.
[JsonSourceGenerationOptions(
    WriteIndented = false,
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip)]
[JsonSerializable(typeof(StepEntry))]
[JsonSerializable(typeof(ImageState))]
[JsonSerializable(typeof(DiskCacheEntry))]
internal sealed partial class StoreJsonContext : JsonSerializerContext;
