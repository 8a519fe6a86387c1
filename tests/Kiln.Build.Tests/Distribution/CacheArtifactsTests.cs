using System.Text;
using System.Text.Json;
using Kiln.Build.Distribution;
using Kiln.Build.Store;
using Kiln.Oci;

namespace Kiln.Build.Tests.Distribution;

public sealed class CacheArtifactsTests
{
    private static readonly string Key = new('a', 64);

    private static ImageState State()
    {
        var diffId = Digest.Compute("layer"u8);
        return new ImageState
        {
            Layers = [new Descriptor { MediaType = MediaTypes.LayerGzip, Digest = Digest.Compute("gz"u8), Size = 2 }],
            Config = new ImageConfig
            {
                Created = "1970-01-01T00:00:00Z",
                RootFs = new RootFs { DiffIds = [diffId] },
            },
        };
    }

    [Fact]
    public void A_step_entry_reads_back_to_the_same_state_and_digests()
    {
        var state = State();
        var manifest = CacheArtifacts.StepManifest(Key, state);

        var entry = CacheArtifacts.ReadStepManifest(Key, manifest);

        Assert.NotNull(entry);
        var config = CacheArtifacts.ConfigBytes(state);
        var read = CacheArtifacts.State(entry.Value.Config, entry.Value.Layers, config);
        Assert.NotNull(read);
        Assert.Equal(state.Layers, read.Layers);
        Assert.Equal(Digest.Compute(config), Digest.Compute(CacheArtifacts.ConfigBytes(read)));
        using var doc = JsonDocument.Parse(manifest);
        Assert.Equal(CacheArtifacts.StepArtifactType, doc.RootElement.GetProperty("artifactType").GetString());
        Assert.Equal(MediaTypes.ImageManifest, doc.RootElement.GetProperty("mediaType").GetString());
        Assert.Equal(Key, doc.RootElement.GetProperty("annotations").GetProperty(CacheArtifacts.KeyAnnotation).GetString());
    }

    [Fact]
    public void An_entry_for_another_key_or_of_another_type_is_a_miss()
    {
        var manifest = CacheArtifacts.StepManifest(Key, State());
        Assert.Null(CacheArtifacts.ReadStepManifest(new string('b', 64), manifest));
        Assert.Null(CacheArtifacts.ReadTestResultManifest(Key, manifest));
        Assert.Null(CacheArtifacts.ReadStepManifest(Key, "not json"u8));
    }

    [Fact]
    public void A_config_that_does_not_match_its_descriptor_is_refused()
    {
        var state = State();
        var entry = CacheArtifacts.ReadStepManifest(Key, CacheArtifacts.StepManifest(Key, state))!.Value;
        var other = CacheArtifacts.ConfigBytes(state with { Config = state.Config with { Created = "2000-01-01T00:00:00Z" } });
        Assert.Null(CacheArtifacts.State(entry.Config, entry.Layers, other));
        // The same config written another way (spacing) reads to the same record but would give other digests.
        var spaced = Encoding.UTF8.GetBytes(" " + Encoding.UTF8.GetString(CacheArtifacts.ConfigBytes(state)));
        Assert.Null(CacheArtifacts.State(CacheArtifacts.Describe(MediaTypes.ImageConfig, spaced), entry.Layers, spaced));
    }

    [Fact]
    public void A_test_result_entry_holds_the_result_as_its_one_layer()
    {
        var json = "{\"passed\":true}"u8.ToArray();
        var result = CacheArtifacts.ReadTestResultManifest(Key, CacheArtifacts.TestResultManifest(Key, json));
        Assert.Equal(CacheArtifacts.Describe(CacheArtifacts.TestResultArtifactType, json), result);
        Assert.Equal("kiln-test-" + Key, CacheArtifacts.TestResultTag(Key));
        Assert.True(CacheArtifacts.StepTag(Key).Length <= 128);
    }
}
