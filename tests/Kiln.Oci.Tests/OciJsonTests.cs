using System.Text;
using Kiln.Oci;

namespace Kiln.Oci.Tests;

public sealed class OciJsonTests
{
    private static readonly Digest Layer = Digest.Compute("layer"u8);
    private static readonly Digest Config = Digest.Compute("config"u8);

    [Fact]
    public void A_manifest_round_trips_and_serialises_the_same_bytes_twice()
    {
        var m = new Manifest
        {
            Config = new Descriptor { MediaType = MediaTypes.ImageConfig, Digest = Config, Size = 6 },
            Layers = [new Descriptor { MediaType = MediaTypes.LayerGzip, Digest = Layer, Size = 5 }],
        };
        var bytes = OciJson.Serialize(m);
        Assert.Equal(bytes, OciJson.Serialize(OciJson.DeserializeManifest(bytes)));
        var text = Encoding.UTF8.GetString(bytes);
        Assert.StartsWith("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":", text);
        Assert.DoesNotContain("annotations", text);
    }

    [Fact]
    public void A_config_keeps_diff_ids_history_and_the_docker_style_field_names()
    {
        var c = new ImageConfig
        {
            Created = "1970-01-01T00:00:00Z",
            Config = new ContainerConfig { Cmd = ["nginx"], ExposedPorts = new Dictionary<string, EmptyObject> { ["8080/tcp"] = new() } },
            RootFs = new RootFs { DiffIds = [Layer] },
            History = [new HistoryEntry { CreatedBy = "kiln run", EmptyLayer = true }],
        };
        var text = Encoding.UTF8.GetString(OciJson.Serialize(c));
        Assert.Contains("\"Cmd\":[\"nginx\"]", text);
        Assert.Contains("\"ExposedPorts\":{\"8080/tcp\":{}}", text);
        Assert.Contains("\"diff_ids\":[\"" + Layer.Value + "\"]", text);
        Assert.Contains("\"empty_layer\":true", text);
        Assert.Equal(c.RootFs.DiffIds, OciJson.DeserializeConfig(Encoding.UTF8.GetBytes(text)).RootFs.DiffIds);
    }

    [Theory]
    [InlineData("""{"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}""", "architecture")]
    [InlineData("""{"architecture":"amd64","os":null,"rootfs":{"type":"layers","diff_ids":[]}}""", "os")]
    [InlineData("""{"architecture":"amd64","os":"linux"}""", "rootfs")]
    [InlineData("""{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":null}}""", "rootfs.diff_ids")]
    [InlineData("""{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"history":[null]}""", "history")]
    [InlineData("""{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{"Env":["A=1",null]}}""", "config.Env")]
    [InlineData("""{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{"Labels":{"a":null}}}""", "config.Labels")]
    public void A_config_without_architecture_os_or_rootfs_is_refused(string json, string missing)
    {
        var ex = Assert.ThrowsAny<System.Text.Json.JsonException>(() => OciJson.DeserializeConfig(Encoding.UTF8.GetBytes(json)));
        Assert.Contains($"'{missing}'", ex.Message);
    }

    [Theory]
    [InlineData("""{"schemaVersion":2,"config":null,"layers":[]}""", "'config'")]
    [InlineData("""{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1},"layers":null}""", "'layers'")]
    [InlineData("""{"schemaVersion":2,"config":{"mediaType":null,"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1},"layers":[]}""", "'config.mediaType'")]
    [InlineData("""{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1},"layers":[null]}""", "'layers[0]'")]
    public void A_manifest_with_a_required_member_null_is_refused_by_name(string json, string named)
    {
        var ex = Assert.ThrowsAny<System.Text.Json.JsonException>(() => OciJson.DeserializeManifest(Encoding.UTF8.GetBytes(json)));
        Assert.Contains(named, ex.Message);
    }

    [Fact]
    public void An_index_without_manifests_reads_as_empty()
    {
        Assert.Empty(OciJson.DeserializeIndex("""{"schemaVersion":2}"""u8).Manifests);
        Assert.Empty(OciJson.DeserializeIndex("""{"schemaVersion":2,"manifests":null}"""u8).Manifests);
    }

    [Fact]
    public void A_document_with_a_malformed_digest_is_refused()
    {
        var bad = "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"sha256:../../etc\",\"size\":1},\"layers\":[]}";
        Assert.ThrowsAny<System.Text.Json.JsonException>(() => OciJson.DeserializeManifest(Encoding.UTF8.GetBytes(bad)));
    }

    [Theory]
    [InlineData("""{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}""")]
    [InlineData("""{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"history":null,"config":null,"created":null}""")]
    [InlineData("""{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{"Env":null,"Cmd":null,"Labels":null}}""")]
    public void A_config_without_its_optional_fields_reads_as_empty_ones(string json)
    {
        var c = OciJson.DeserializeConfig(Encoding.UTF8.GetBytes(json));
        Assert.Empty(c.History);
        Assert.Empty(c.RootFs.DiffIds);
        Assert.Null(c.Config.Env);
        Assert.Null(c.Created);
        var written = OciJson.Serialize(c);
        Assert.Equal(written, OciJson.Serialize(OciJson.DeserializeConfig(written)));
        Assert.Contains("\"history\":[]", Encoding.UTF8.GetString(written));
    }
}
