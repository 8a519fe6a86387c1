using System.Globalization;
using System.Text.Json;
using Kiln.Build.Definition;
using Kiln.Build.Execution;
using Kiln.Build.Planning;
using Kiln.Build.Store;
using Kiln.Build.Testing;
using Kiln.Build.Testing.Spec;
using Kiln.Oci;

namespace Kiln.Build.Provenance;

/// <summary>Wraps the test gate of a build: once an image's tests have answered, attaches to its digest what proves
/// how it was made and tested, as referrers in the store: the test results of each phase (Kiln's JSON and JUnit), an
/// SPDX SBOM of its dpkg database, and the build record. The gate's answer is passed on unchanged.</summary>
public sealed class ProvenanceGate : IImageGate
{
    private readonly KilnStore _store;
    private readonly IImageGate _inner;
    private readonly KilnFile _file;
    private readonly IReadOnlyDictionary<string, TestSpec> _specs;
    private readonly string _tool;
    private readonly IProgress<BuildEvent>? _progress;

    /// <summary>Kiln as SBOMs and build records name it: <c>kiln-VERSION</c>.</summary>
    public static string Tool => "kiln-" + typeof(ProvenanceGate).Assembly.GetName().Version;

    public ProvenanceGate(KilnStore store, IImageGate inner, KilnFile file, IReadOnlyDictionary<string, TestSpec> specs, string tool,
        IProgress<BuildEvent>? progress = null)
    {
        _progress = progress;
        _store = store;
        _inner = inner;
        _file = file;
        _specs = specs;
        _tool = tool;
    }

    public async Task<GateResult> CheckAsync(ImagePlan image, Descriptor manifest, ImageState state, CancellationToken ct)
    {
        var clock = new PhaseClock(_progress, image.Name, null);
        // The build record does not depend on the tests' answer: it is written while they run.
        var existing = StoredReferrers.ListAsync(_store, manifest.Digest, ct);
        var record = Task.Run(async () =>
        {
            using (clock.Measure("build record"))
            {
                await WriteBuildRecordAsync(image, manifest, await existing.ConfigureAwait(false), ct).ConfigureAwait(false);
            }
        }, ct);
        GateResult result;
        try
        {
            result = await _inner.CheckAsync(image, manifest, state, ct).ConfigureAwait(false);
            var spec = _specs.GetValueOrDefault(image.Name);
            if (spec is not null && result.Phases.Count > 0)
            {
                using (clock.Measure("test results"))
                {
                    await WriteTestResultsAsync(_store, image.Name, manifest, spec.Digest, result.Phases, ct, await existing.ConfigureAwait(false)).ConfigureAwait(false);
                }
            }
        }
        finally
        {
            // Nothing of this gate may still write once it has answered (or failed).
            await record.ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default).ConfigureAwait(false);
        }
        await record.ConfigureAwait(false);
        // The SBOM is not made here: it hashes every file dpkg lists, seconds for a Debian image, which an app change
        // must not wait for. EnsureSbomAsync makes it on first request (kiln sbom, kiln push).
        return result;
    }

    private async Task WriteBuildRecordAsync(ImagePlan image, Descriptor manifest, IReadOnlyList<StoredReferrer> existing, CancellationToken ct)
    {
        // A no-op rebuild writes nothing: the same record is already there.
        var record = BuildRecord(image, manifest);
        var recordDigest = Digest.Compute(record);
        if (!existing.Any(r => r.ArtifactType == StoredReferrers.BuildRecordType && r.Layers.Count == 1 && r.Layers[0].Digest == recordDigest))
        {
            await StoredReferrers.WriteAsync(_store, manifest, StoredReferrers.BuildRecordType,
                [(StoredReferrers.BuildRecordType, record, "build-record.json")], null, ct).ConfigureAwait(false);
        }
    }

    /// <summary>The SBOM referrer of the image <paramref name="manifest"/>, made and stored now when it has none (its
    /// layers are extracted if they are not yet); null when the image has no dpkg database.</summary>
    public static async Task<StoredReferrer?> EnsureSbomAsync(KilnStore store, string image, Descriptor manifest, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(manifest);
        static StoredReferrer? Sbom(IReadOnlyList<StoredReferrer> all) => all.FirstOrDefault(r => r.ArtifactType == StoredReferrers.SbomType);
        if (Sbom(await StoredReferrers.ListAsync(store, manifest.Digest, ct).ConfigureAwait(false)) is { } found)
        {
            return found;
        }
        var state = await store.Content.ReadImageStateAsync(manifest.Digest, ct).ConfigureAwait(false);
        await store.Snapshots.EnsureAsync(state, null, ct).ConfigureAwait(false);
        var created = DateTimeOffset.TryParse(state.Config.Created, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var c) ? c : DateTimeOffset.UnixEpoch;
        var sbom = await Task.Run(() => SpdxWriter.Write(LayerCommit.LowerDirs(store, state), image, manifest.Digest, created, Tool), ct).ConfigureAwait(false);
        if (sbom is null)
        {
            return null;
        }
        await StoredReferrers.WriteAsync(store, manifest, StoredReferrers.SbomType, [(StoredReferrers.SbomType, sbom, "sbom.spdx.json")], null, ct).ConfigureAwait(false);
        return Sbom(await StoredReferrers.ListAsync(store, manifest.Digest, ct).ConfigureAwait(false));
    }

    public void Prepare(ImagePlan image) => _inner.Prepare(image);

    public Task WhenIdleAsync() => _inner.WhenIdleAsync();

    // The minimized image is checked through this gate too, so it gets its own referrers.
    public IImageMinimizer? Minimizer => _inner.Minimizer;

    /// <summary>The test results of <paramref name="phases"/> as one referrer: per phase, the result JSON (the very bytes
    /// of the result cache, which <c>kiln promote</c> records by digest) and JUnit XML.
    /// The latest results replace earlier ones of the same image and spec: a rebuild that answers from the result
    /// cache (its JUnit times differ) must not leave a second referrer.</summary>
    public static async Task<Descriptor> WriteTestResultsAsync(KilnStore store, string image, Descriptor manifest, Digest spec,
        IReadOnlyList<TestPhaseReport> phases, CancellationToken ct, IReadOnlyList<StoredReferrer>? existing = null)
    {
        var documents = TestResultDocuments(store, image, manifest, spec, phases);
        // Results answered from the result cache are the same JSON bytes: nothing new to record (only JUnit's times
        // would differ).
        var jsons = documents.Where(d => d.MediaType == StoredReferrers.TestResultMediaType).Select(d => Digest.Compute(d.Bytes)).ToHashSet();
        existing ??= await StoredReferrers.ListAsync(store, manifest.Digest, ct).ConfigureAwait(false);
        if (existing.FirstOrDefault(r => r.ArtifactType == StoredReferrers.TestResultsType && r.Annotations.GetValueOrDefault("io.kiln.spec") == spec.Value
            && r.Layers.Where(l => l.MediaType == StoredReferrers.TestResultMediaType).Select(l => l.Digest).ToHashSet().SetEquals(jsons)) is { } same)
        {
            return same.Manifest;
        }
        var annotations = new Dictionary<string, string> { ["io.kiln.spec"] = spec.Value };
        var stale = existing
            .Where(r => r.ArtifactType == StoredReferrers.TestResultsType && r.Annotations.GetValueOrDefault("io.kiln.spec") == spec.Value)
            .Select(r => r.Manifest.Digest).ToHashSet();
        return await StoredReferrers.WriteAsync(store, manifest, StoredReferrers.TestResultsType, documents, annotations, ct, stale).ConfigureAwait(false);
    }

    private static List<(string MediaType, byte[] Bytes, string? Title)> TestResultDocuments(KilnStore store, string image, Descriptor manifest, Digest spec,
        IReadOnlyList<TestPhaseReport> phases)
    {
        var documents = new List<(string, byte[], string?)>();
        var results = new TestResultStore(store);
        foreach (var phase in phases.Where(p => p.SkippedBecause is null))
        {
            var key = ImageTester.CacheKey(manifest.Digest, spec, phase.Phase switch { "boot" => TestPhase.Boot, "vm" => TestPhase.Vm, _ => TestPhase.Bake });
            var json = results.TryRead(key) is { } stored && TestResultJson.Read(stored, image) is { } read && read.Passed == phase.Passed
                ? stored
                : TestResultJson.Write(phase, manifest.Digest, spec);
            documents.Add((StoredReferrers.TestResultMediaType, json, phase.Phase + ".json"));
            using var junit = new MemoryStream();
            JUnitReport.Write(junit, [phase]);
            documents.Add((StoredReferrers.JUnitMediaType, junit.ToArray(), phase.Phase + ".junit.xml"));
        }
        return documents;
    }

    private byte[] BuildRecord(ImagePlan image, Descriptor manifest)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("image", image.Name);
            w.WriteString("manifest", manifest.Digest.Value);
            w.WriteString("kiln", _tool);
            w.WriteStartObject("definition");
            w.WriteString("file", Path.GetFileName(_file.Path));
            w.WriteString("digest", DefinitionDigest());
            w.WriteEndObject();
            w.WriteStartObject("base");
            w.WriteString("key", image.BaseKey);
            switch (image.Definition.Source)
            {
                case BootstrapSource b:
                    w.WriteString("bootstrap", $"{b.Distro}/{b.Suite}");
                    break;
                case FromImageSource f:
                    w.WriteString("image", f.ImageName);
                    WriteDigest(w, _store.Names.TryGetTag(f.ImageName));
                    break;
                case RegistrySource r:
                    w.WriteString("reference", r.Reference);
                    WriteDigest(w, Store.Names.ImageNames.IsValidTagName(r.Reference) ? _store.Names.TryGetTag(r.Reference) : null);
                    break;
                case OciLayoutSource o:
                    w.WriteString("oci", $"{o.LayoutPath}:{o.Tag}");
                    break;
                case ScratchSource:
                    w.WriteString("scratch", "scratch");
                    break;
                default:
                    break;
            }
            w.WriteEndObject();
            w.WriteStartArray("steps");
            foreach (var step in image.Steps)
            {
                w.WriteStartObject();
                w.WriteString("key", step.CacheKey);
                w.WriteString("step", step.Canonical);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteString("imageKey", image.ImageKey);
            w.WriteEndObject();
        }
        return ms.ToArray();
    }

    private static void WriteDigest(Utf8JsonWriter w, Descriptor? d)
    {
        if (d is not null)
        {
            w.WriteString("digest", d.Digest.Value);
        }
    }

    private string DefinitionDigest()
    {
        try
        {
            return Digest.Compute(File.ReadAllBytes(_file.Path)).Value;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw StoreException.Io($"reading '{_file.Path}' for the build record", e);
        }
    }
}
