using Kiln.Build.Definition;
using Kiln.Build.Execution;
using Kiln.Build.Promotion;
using Kiln.Build.Services;
using Kiln.Build.Testing;
using Kiln.Build.Testing.Spec;
using Kiln.Build.Tests.Definition;
using Kiln.Build.Tests.Store;
using Kiln.Oci;

namespace Kiln.Build.Tests.Promotion;

/// <summary><c>kiln promote SERVICE CHANNEL</c> through <see cref="PairGate"/>, on a store whose image, package, image
/// results and pair records the test writes itself: the gate's logic without booting anything.</summary>
public sealed class ServicePromotionTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly TempContext _ctx = new();

    public ServicePromotionTests()
    {
        _ctx.File("hello.deb", "not really a deb: the gate only reads its digest")
            .Yaml("""
                channels:
                  staging: [bake, boot]
                  lab: [boot, vm]
                  gated: {require: [boot], approve: true}
                images:
                  runner:
                    from: scratch
                    config: {cmd: [/bin/true]}
                    test:
                      file: {/greeting: {exists: true}}
                services:
                  hello:
                    image: runner
                    package: hello.deb
                    test:
                      port: {"tcp:8081": {listening: true}}
                """);
    }

    public void Dispose()
    {
        _store.Dispose();
        _ctx.Dispose();
    }

    private KilnFile File => _ctx.Load();

    private ServiceDefinition Service => File.Services.Single();

    private TestSpec ImageSpec => TestSpecLoader.Load(File.Images.Single().Test!, BootMode.Process);

    private TestSpec ServiceSpec => TestSpecLoader.Load(Service.Test!, BootMode.Systemd);

    private Task<PromotionRecord> Promote(string channel, bool approve = false) => Promoter.PromoteAsync(new PromoteRequest
    {
        DefinitionPath = _ctx.Dir,
        StoreRoot = _store.Root,
        Image = "hello",
        Channel = channel,
        Approve = approve,
        Who = "alice",
        Time = new DateTimeOffset(2026, 12, 8, 1, 0, 0, TimeSpan.Zero),
    });

    /// <summary>The image built (and its bake phase passed against the current spec) and the package stored, as
    /// <c>kiln build</c> leaves them.</summary>
    private async Task<ServicePair> BuiltAsync(string package = "v1")
    {
        var store = _store.Store;
        var manifest = await store.Content.WriteImageAsync(await _store.AddLayerAsync(TestStore.Empty, "greeting", "hi"));
        await store.Names.TagAsync("runner", manifest);
        var bake = new TestPhaseReport { Image = "runner", Phase = "bake", Checks = [new CheckReport { Section = "file", Subject = "/greeting", Duration = TimeSpan.Zero }], Duration = TimeSpan.Zero };
        await new TestResultStore(store).WriteAsync(ImageTester.CacheKey(manifest.Digest, ImageSpec.Digest, TestPhase.Bake),
            TestResultJson.Write(bake, manifest.Digest, ImageSpec.Digest));
        var deb = await store.Content.WriteBlobAsync(System.Text.Encoding.UTF8.GetBytes(package), ServicePackages.MediaType);
        await store.Pins.PinAsync(ServicePackages.PinName("hello"), deb.Digest);
        return PairGate.Current(store, Service);
    }

    private Task RecordAsync(ServicePair pair, bool passed, Digest? serviceSpec = null, string phase = "boot") =>
        new PairStore(_store.Store).WriteAsync(new PairRecord
        {
            Pair = pair,
            Phase = phase,
            Passed = passed,
            TestedAt = DateTimeOffset.UnixEpoch,
            Duration = TimeSpan.FromSeconds(1),
            ServiceSpec = serviceSpec ?? ServiceSpec.Digest,
            ImageSpec = ImageSpec.Digest,
        });

    [Fact]
    public async Task A_pair_is_promoted_only_once_it_passed_the_channels_phases_against_the_current_specs()
    {
        var pair = await BuiltAsync();

        var untested = await Assert.ThrowsAsync<PromotionException>(() => Promote("staging"));
        Assert.True(untested.IsRefusal);
        Assert.Contains($"image runner@{pair.Image.Value}, package {pair.Package.Value}, config {pair.Config.Value}", untested.Message, StringComparison.Ordinal);
        Assert.Contains("no passing boot pair test: run 'kiln test hello'", untested.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("bake", untested.Message, StringComparison.Ordinal); // the image's own bake result counts

        await RecordAsync(pair, passed: false);
        Assert.Contains("no passing boot pair test", (await Assert.ThrowsAsync<PromotionException>(() => Promote("staging"))).Message, StringComparison.Ordinal);

        await RecordAsync(pair, passed: true, serviceSpec: Digest.Compute("an older spec"u8.ToArray()));
        Assert.Contains("ran against an older spec", (await Assert.ThrowsAsync<PromotionException>(() => Promote("staging"))).Message, StringComparison.Ordinal);

        await RecordAsync(pair, passed: true);
        var promoted = await Promote("staging");
        Assert.Equal(pair.Image, promoted.Digest);
        Assert.Equal(new PromotedPair("hello", pair.Package, pair.Config), promoted.Pair);
        Assert.Equal(["bake", "boot"], promoted.Results.Select(r => r.Phase));
        Assert.Equal(ServiceSpec.Digest, promoted.Results[1].Spec);
        Assert.Equal(new PairStore(_store.Store).RecordDigest(pair, "boot"), promoted.Results[1].Result);

        // Logged like an image's promotion, read back with its pair; the image alone is not promoted by it.
        var log = new PromotionLog(_store.Store);
        Assert.Equal(promoted, log.Read().Single() with { Results = promoted.Results });
        Assert.Equal(promoted.Results, log.Read().Single().Results);
        Assert.False(log.IsPromoted(pair.Image, "staging"));

        // Approval and phases the pair has no passing test in are named too.
        var gated = await Assert.ThrowsAsync<PromotionException>(() => Promote("gated"));
        Assert.Contains("needs approval", gated.Message, StringComparison.Ordinal);
        Assert.Equal("gated", (await Promote("gated", approve: true)).Channel);
        var lab = await Assert.ThrowsAsync<PromotionException>(() => Promote("lab"));
        Assert.Contains("no passing vm pair test: run 'kiln test hello --phase vm'", lab.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("no passing boot", lab.Message, StringComparison.Ordinal);

        // A second version of the package is a new pair: refused, by its own digests, until it too passes.
        var v2 = await BuiltAsync("v2");
        Assert.NotEqual(pair.Package, v2.Package);
        var refused = await Assert.ThrowsAsync<PromotionException>(() => Promote("staging"));
        Assert.Contains($"package {v2.Package.Value}", refused.Message, StringComparison.Ordinal);
        await RecordAsync(v2, passed: true);
        Assert.Equal(v2.Package, (await Promote("staging")).Pair!.Package);
    }

    [Fact]
    public async Task A_service_whose_image_or_package_is_not_stored_is_bad_input()
    {
        var e = await Assert.ThrowsAsync<ArgumentException>(() => Promote("staging"));
        Assert.Contains("the store has no image named 'runner'", e.Message, StringComparison.Ordinal);
    }
}
