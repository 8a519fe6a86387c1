using System.Text.Json;
using Kiln.Build.Store;
using Kiln.Oci;

namespace Kiln.Build.Provenance;

/// <summary>An artifact attached to an image: an OCI 1.1 image manifest with <c>subject</c> (the image's manifest) and
/// <c>artifactType</c>, whose config is the empty descriptor and whose layers are the documents.</summary>
public sealed record StoredReferrer(Descriptor Manifest, string ArtifactType, Digest Subject, IReadOnlyList<Descriptor> Layers)
{
    public IReadOnlyDictionary<string, string> Annotations { get; init; } = new Dictionary<string, string>();
}

/// <summary>The store's referrers: artifact manifests in the content store, listed in the layout's <c>index.json</c>
/// without a name, so any OCI layout reader finds them and gc keeps them exactly while their subject is named.</summary>
public static class StoredReferrers
{
    public const string TestResultsType = "application/vnd.kiln.test-results.v1+json";
    public const string TestResultMediaType = "application/vnd.kiln.test-result.v1+json";
    public const string JUnitMediaType = "application/vnd.kiln.junit.v1+xml";
    public const string SbomType = "application/spdx+json";
    public const string BuildRecordType = "application/vnd.kiln.build-record.v1+json";

    /// <summary>The OCI empty descriptor's content, the config of every artifact.</summary>
    private static readonly byte[] EmptyJson = "{}"u8.ToArray();

    /// <summary>The annotation on a referrer's <c>index.json</c> entry naming its subject, so that listing an image's
    /// referrers reads only theirs rather than every artifact manifest in the store.</summary>
    public const string SubjectAnnotation = "io.kiln.subject";

    /// <summary>Writes the documents, the manifest naming <paramref name="subject"/>, and its index entry; returns the
    /// manifest's descriptor. The same documents for the same subject give the same manifest. The index entries
    /// <paramref name="replaces"/> names go in the same update of <c>index.json</c>.</summary>
    public static async Task<Descriptor> WriteAsync(KilnStore store, Descriptor subject, string artifactType,
        IReadOnlyList<(string MediaType, byte[] Bytes, string? Title)> documents, IReadOnlyDictionary<string, string>? annotations = null,
        CancellationToken ct = default, IReadOnlySet<Digest>? replaces = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(subject);
        // Written side by side: each blob is made durable on its own, and the file system commits concurrent syncs
        // together, where one after the other each would wait for its own.
        var config = store.Content.WriteBlobAsync(EmptyJson, "application/vnd.oci.empty.v1+json", ct);
        var written = await Task.WhenAll(documents.Select(d => store.Content.WriteBlobAsync(d.Bytes, d.MediaType, ct))).ConfigureAwait(false);
        var layers = documents.Select((d, i) => d.Title is null
            ? written[i]
            : written[i] with { Annotations = new Dictionary<string, string> { ["org.opencontainers.image.title"] = d.Title } }).ToList();
        var manifest = Manifest(subject, artifactType, await config.ConfigureAwait(false), layers, annotations);
        var descriptor = await store.Content.WriteBlobAsync(manifest, MediaTypes.ImageManifest, ct).ConfigureAwait(false);
        descriptor = descriptor with
        {
            ArtifactType = artifactType,
            Annotations = new Dictionary<string, string> { [SubjectAnnotation] = subject.Digest.Value },
        };
        await store.Names.AddUntaggedAsync(descriptor, ct, replaces).ConfigureAwait(false);
        return descriptor;
    }

    /// <summary>The referrers of <paramref name="subject"/>, by artifact type then digest.</summary>
    public static async Task<IReadOnlyList<StoredReferrer>> ListAsync(KilnStore store, Digest subject, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        var found = new List<StoredReferrer>();
        foreach (var entry in store.Names.ListUntagged())
        {
            // Entries written before the subject was annotated are read to find theirs.
            if (entry.Annotations?.GetValueOrDefault(SubjectAnnotation) is { } annotated && annotated != subject.Value)
            {
                continue;
            }
            if (!store.Content.HasBlob(entry.Digest))
            {
                continue;
            }
            var referrer = Read(entry, await store.Content.ReadBlobAsync(entry.Digest, ct).ConfigureAwait(false));
            if (referrer is not null && referrer.Subject == subject)
            {
                found.Add(referrer);
            }
        }
        return [.. found.OrderBy(r => r.ArtifactType, StringComparer.Ordinal).ThenBy(r => r.Manifest.Digest.Value, StringComparer.Ordinal)];
    }

    /// <summary>A manifest's referrer fields, or null when it is not an artifact with a subject.</summary>
    public static StoredReferrer? Read(Descriptor descriptor, byte[] manifest)
    {
        try
        {
            using var doc = JsonDocument.Parse(manifest);
            var root = doc.RootElement;
            if (!root.TryGetProperty("subject", out var subject) || !root.TryGetProperty("artifactType", out var type))
            {
                return null;
            }
            var layers = root.GetProperty("layers").EnumerateArray().Select(l => new Descriptor
            {
                MediaType = l.GetProperty("mediaType").GetString()!,
                Digest = Digest.Parse(l.GetProperty("digest").GetString()!),
                Size = l.GetProperty("size").GetInt64(),
                Annotations = l.TryGetProperty("annotations", out var a) ? a.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? "") : null,
            }).ToList();
            var annotations = root.TryGetProperty("annotations", out var ann)
                ? ann.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? "")
                : new Dictionary<string, string>();
            var referrer = new StoredReferrer(descriptor with { ArtifactType = type.GetString() }, type.GetString()!,
                Digest.Parse(subject.GetProperty("digest").GetString()!), layers);
            return referrer with { Annotations = annotations };
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            return null;
        }
    }

    private static byte[] Manifest(Descriptor subject, string artifactType, Descriptor config, List<Descriptor> layers,
        IReadOnlyDictionary<string, string>? annotations)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteNumber("schemaVersion", 2);
            w.WriteString("mediaType", MediaTypes.ImageManifest);
            w.WriteString("artifactType", artifactType);
            w.WritePropertyName("config");
            Write(w, config);
            w.WriteStartArray("layers");
            foreach (var layer in layers)
            {
                Write(w, layer);
            }
            w.WriteEndArray();
            w.WritePropertyName("subject");
            Write(w, new Descriptor { MediaType = subject.MediaType, Digest = subject.Digest, Size = subject.Size });
            if (annotations is { Count: > 0 })
            {
                w.WriteStartObject("annotations");
                foreach (var (k, v) in annotations.OrderBy(a => a.Key, StringComparer.Ordinal))
                {
                    w.WriteString(k, v);
                }
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        return buffer.ToArray();
    }

    private static void Write(Utf8JsonWriter w, Descriptor d)
    {
        w.WriteStartObject();
        w.WriteString("mediaType", d.MediaType);
        w.WriteString("digest", d.Digest.Value);
        w.WriteNumber("size", d.Size);
        if (d.Annotations is { Count: > 0 } annotations)
        {
            w.WriteStartObject("annotations");
            foreach (var (k, v) in annotations.OrderBy(a => a.Key, StringComparer.Ordinal))
            {
                w.WriteString(k, v);
            }
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }
}
