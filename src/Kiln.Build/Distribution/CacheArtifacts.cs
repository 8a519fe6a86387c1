using System.Buffers;
using System.Text.Json;
using Kiln.Build.Store;
using Kiln.Oci;

namespace Kiln.Build.Distribution;

/// <summary>The remote cache's documents: OCI image manifests with an <c>artifactType</c>, as BuildKit's
/// <c>image-manifest=true</c> cache writes them, so any registry stores them.
/// <para>A step entry (tag <c>kiln-step-KEY</c>) is the step's image as it stands: <c>config</c> is the state's image
/// config blob, <c>layers</c> its layer descriptors, and the annotation <see cref="KeyAnnotation"/> holds the cache
/// key. A puller rebuilds the exact <see cref="ImageState"/> (same digests) from the manifest and the config alone,
/// without the layers.</para>
/// <para>A test result (tag <c>kiln-test-KEY</c>, KEY the hash of image digest, spec digest and phase) has the empty
/// config and the result JSON as its one layer.</para></summary>
public static class CacheArtifacts
{
    public const string StepArtifactType = "application/vnd.kiln.step.v1+json";
    public const string TestResultArtifactType = "application/vnd.kiln.test-result.v1+json";
    public const string KeyAnnotation = "io.kiln.cache.key";

    /// <summary>The OCI empty descriptor's media type and content (<c>{}</c>).</summary>
    public const string EmptyMediaType = "application/vnd.oci.empty.v1+json";
    public static readonly byte[] EmptyJson = "{}"u8.ToArray();

    public static string StepTag(string cacheKey) => "kiln-step-" + CheckKey(cacheKey);

    public static string TestResultTag(string key) => "kiln-test-" + CheckKey(key);

    /// <summary>The config blob of a state: the bytes the store writes for an image with this config.</summary>
    public static byte[] ConfigBytes(ImageState state) => OciJson.Serialize(state.Config);

    public static Descriptor Describe(string mediaType, byte[] bytes) =>
        new() { MediaType = mediaType, Digest = Digest.Compute(bytes), Size = bytes.Length };

    public static byte[] StepManifest(string cacheKey, ImageState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        return Manifest(StepArtifactType, Describe(MediaTypes.ImageConfig, ConfigBytes(state)), state.Layers, CheckKey(cacheKey));
    }

    public static byte[] TestResultManifest(string key, byte[] json) =>
        Manifest(TestResultArtifactType, Describe(EmptyMediaType, EmptyJson), [Describe(TestResultArtifactType, json)], CheckKey(key));

    /// <summary>Reads a step entry: its config descriptor and layers, when it is a step entry for
    /// <paramref name="cacheKey"/>; null for anything else (another artifact type or key, not an OCI manifest).</summary>
    public static (Descriptor Config, IReadOnlyList<Descriptor> Layers)? ReadStepManifest(string cacheKey, ReadOnlySpan<byte> json) =>
        Read(StepArtifactType, MediaTypes.ImageConfig, cacheKey, json);

    /// <summary>Reads a test result entry: the descriptor of its result JSON, or null as <see cref="ReadStepManifest"/>.</summary>
    public static Descriptor? ReadTestResultManifest(string key, ReadOnlySpan<byte> json) =>
        Read(TestResultArtifactType, EmptyMediaType, key, json) is { Layers: [{ MediaType: TestResultArtifactType } result] } ? result : null;

    /// <summary>The state a step entry stands for, from its config blob: null when the config does not read back to
    /// these very bytes (the state would give other digests) or does not pair with the layers.</summary>
    public static ImageState? State(Descriptor config, IReadOnlyList<Descriptor> layers, byte[] configBytes)
    {
        ImageConfig parsed;
        try
        {
            parsed = OciJson.DeserializeConfig(configBytes);
        }
        catch (JsonException)
        {
            return null;
        }
        if (parsed.RootFs?.DiffIds is null || parsed.RootFs.DiffIds.Count != layers.Count
            || Digest.Compute(OciJson.Serialize(parsed)) != config.Digest || Digest.Compute(configBytes) != config.Digest)
        {
            return null;
        }
        return new ImageState { Layers = layers, Config = parsed };
    }

    private static byte[] Manifest(string artifactType, Descriptor config, IReadOnlyList<Descriptor> layers, string key)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteNumber("schemaVersion", 2);
            w.WriteString("mediaType", MediaTypes.ImageManifest);
            w.WriteString("artifactType", artifactType);
            w.WritePropertyName("config");
            OciJson.Write(w, config);
            w.WriteStartArray("layers");
            foreach (var layer in layers)
            {
                OciJson.Write(w, layer);
            }
            w.WriteEndArray();
            w.WriteStartObject("annotations");
            w.WriteString(KeyAnnotation, key);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    private static (Descriptor Config, IReadOnlyList<Descriptor> Layers)? Read(string artifactType, string configType, string key,
        ReadOnlySpan<byte> json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json.ToArray());
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("artifactType", out var type) || type.ValueKind != JsonValueKind.String || type.GetString() != artifactType
                || !root.TryGetProperty("annotations", out var notes) || notes.ValueKind != JsonValueKind.Object
                || !notes.TryGetProperty(KeyAnnotation, out var k) || k.ValueKind != JsonValueKind.String || k.GetString() != key)
            {
                return null;
            }
            var manifest = OciJson.DeserializeManifest(json);
            return manifest.Config.MediaType == configType ? (manifest.Config, manifest.Layers) : null;
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            return null;
        }
    }

    private static string CheckKey(string key) =>
        Store.Steps.StepCache.IsValidCacheKey(key) ? key : throw new ArgumentException($"cache key '{key}' is not 64 lowercase hex digits", nameof(key));
}
