using Kiln.Build.Definition;
using Kiln.Build.Store;
using Kiln.Build.Testing;
using Kiln.Build.Testing.Spec;
using Kiln.Oci;
using Kiln.Oci.Registry;

namespace Kiln.Build.Promotion;

/// <summary>What <c>kiln promote</c> asks: promote the stored image <see cref="Image"/> (or the current pair of the
/// service of that name, when the definition names no image so) to <see cref="Channel"/> of the definition at
/// <see cref="DefinitionPath"/>.</summary>
public sealed record PromoteRequest
{
    public required string DefinitionPath { get; init; }
    public required string StoreRoot { get; init; }
    public required string Image { get; init; }
    public required string Channel { get; init; }
    public bool Approve { get; init; }

    /// <summary>Who promotes (the CLI passes the user); recorded as given.</summary>
    public required string Who { get; init; }

    public required DateTimeOffset Time { get; init; }

    /// <summary>Where the channel tag moves (<c>Repository:Channel</c>), through <see cref="Registry"/>; null: no tag.</summary>
    public string? Repository { get; init; }

    public RegistryClient? Registry { get; init; }
}

/// <summary>The channel gate and the record: an image's digest is promoted only when it has a passing result for each
/// phase the channel requires, against the image's current spec (the result cache's key: manifest digest, spec digest,
/// phase), and the approval the channel asks for. Then the channel tag moves in the registry (the manifest's bytes
/// already there, put again under the tag: never a rebuild) and the promotion is appended to the log.</summary>
public static partial class Promoter
{
    public static async Task<PromotionRecord> PromoteAsync(PromoteRequest request, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var file = DefinitionLoader.Load(request.DefinitionPath);
        var channel = file.Channels.FirstOrDefault(c => c.Name == request.Channel)
            ?? throw PromotionException.UnknownChannel(request.Channel, file.Channels.Select(c => c.Name), file.Path);
        if (file.Images.All(i => i.Name != request.Image) && file.Services.FirstOrDefault(s => s.Name == request.Image) is { } service)
        {
            return await PromoteServiceAsync(request, file, channel, service, ct).ConfigureAwait(false);
        }
        var definition = file.Images.FirstOrDefault(i => i.Name == request.Image)
            ?? throw new ArgumentException($"{file.Path} defines no image named '{request.Image}'");
        var spec = definition.Test is null ? null : TestSpecLoader.Load(definition.Test, definition.Boot);

        using var store = KilnStore.Open(request.StoreRoot);
        using var storeLock = store.AcquireLock(exclusive: false, ct);
        var manifest = store.Names.TryGetTag(request.Image)
            ?? throw new ArgumentException($"the store has no image named '{request.Image}' (build it first)");

        var missing = new List<string>();
        var results = new List<PromotedResult>();
        if (spec is null)
        {
            missing.Add(NoSpec(request.Image, file.Path));
        }
        else
        {
            foreach (var phase in channel.Require)
            {
                ImagePhase(store, request.Image, manifest.Digest, spec, phase, missing, results);
            }
        }
        if (channel.Approve && !request.Approve)
        {
            missing.Add($"channel '{channel.Name}' needs approval: promote with --approve");
        }
        if (missing.Count > 0)
        {
            throw PromotionException.Refused(request.Image, channel.Name, missing);
        }

        string? tag = null;
        if (request.Repository is { } repository && request.Registry is { } registry)
        {
            // The manifest the registry already holds by digest, put again under the channel: the same bytes, so the
            // same digest. An image not pushed yet is refused rather than pushed behind the user's back.
            RegistryManifest there;
            try
            {
                there = await registry.GetManifestAsync(repository, manifest.Digest.Value, ct).ConfigureAwait(false);
            }
            catch (RegistryException e) when (e.Kind == RegistryErrorKind.NotFound)
            {
                throw PromotionException.Refused(request.Image, channel.Name,
                    [$"{registry.Registry}/{repository} has no manifest {manifest.Digest}: push it first (kiln push {request.Image} {registry.Registry}/{repository})"]);
            }
            await registry.PutManifestAsync(repository, channel.Name, there.Descriptor.MediaType, there.Content, ct).ConfigureAwait(false);
            tag = $"{registry.Registry}/{repository}:{channel.Name}";
        }

        var record = new PromotionRecord
        {
            Digest = manifest.Digest,
            Image = request.Image,
            Channel = channel.Name,
            Time = request.Time,
            Who = request.Who,
            Approved = request.Approve && channel.Approve,
            Results = results,
            Tag = tag,
        };
        await new PromotionLog(store).AppendAsync(record, ct).ConfigureAwait(false);
        return record;
    }

    /// <summary>Whether the image <paramref name="manifest"/> passed <paramref name="phase"/> against <paramref name="spec"/>
    /// (the current spec): adds the result to <paramref name="results"/>, or what is missing to <paramref name="missing"/>.</summary>
    private static void ImagePhase(KilnStore store, string image, Digest manifest, TestSpec spec, string phase,
        List<string> missing, List<PromotedResult> results)
    {
        var key = ImageTester.CacheKey(manifest, spec.Digest, PhaseOf(phase));
        var json = new TestResultStore(store).TryRead(key);
        var report = TestResultJson.Read(json, image);
        if (report is null)
        {
            missing.Add($"no {phase} result for {manifest} against the current spec ({spec.Digest}){How(phase, image)}");
        }
        else if (!report.Passed)
        {
            missing.Add($"the {phase} phase failed for {manifest} against the current spec");
        }
        else
        {
            results.Add(new PromotedResult(phase, Digest.Compute(json), spec.Digest));
        }
    }

    private static string NoSpec(string image, string file) => $"image '{image}' has no `test:` in {file}, so no phase can have passed";

    private static TestPhase PhaseOf(string phase) => phase switch
    {
        "boot" => TestPhase.Boot,
        "vm" => TestPhase.Vm,
        _ => TestPhase.Bake,
    };

    private static string How(string phase, string image) =>
        $": run 'kiln test {image}" + (phase == "bake" ? "'" : $" --phase {phase}'");
}
