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

    [Fact]
    public void A_document_with_a_malformed_digest_is_refused()
    {
        var bad = "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"sha256:../../etc\",\"size\":1},\"layers\":[]}";
        Assert.ThrowsAny<System.Text.Json.JsonException>(() => OciJson.DeserializeManifest(Encoding.UTF8.GetBytes(bad)));
    }
}
