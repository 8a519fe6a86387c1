using System.Text.Json.Serialization;

namespace Kiln.Build.Store;

// Kiln's own store documents, but for step cache entries (StepEntryJson).
[JsonSourceGenerationOptions(
    WriteIndented = false,
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip)]
[JsonSerializable(typeof(DiskCacheEntry))]
internal sealed partial class StoreJsonContext : JsonSerializerContext;
