using System.Text;
using Kiln.Build.Store;
using Kiln.Build.Store.Steps;
using Kiln.Oci;

namespace Kiln.Build.Tests.Store;

/// <summary>The step cache entry's JSON: what it writes reads back, what an older Kiln wrote still reads, and anything
/// else is no entry (a cache miss), never an exception.</summary>
public sealed class StepEntryJsonTests
{
    private static readonly string D1 = "sha256:" + new string('1', 64), D2 = "sha256:" + new string('2', 64);
    private static readonly string L1 = "sha256:" + new string('a', 64), L2 = "sha256:" + new string('b', 64);

    private static ImageState State() => new()
    {
        Layers =
        [
            new Descriptor { MediaType = MediaTypes.LayerGzip, Digest = Digest.Parse(L1), Size = 10 },
            new Descriptor
            {
                MediaType = MediaTypes.LayerGzip, Digest = Digest.Parse(L2), Size = 20,
                Annotations = new Dictionary<string, string> { ["org.example"] = "a+b \"q\" é" },
            },
        ],
        Config = new ImageConfig
        {
            Created = "2026-01-02T03:04:05Z",
            Config = new ContainerConfig { User = "www-data", Env = ["PATH=/usr/bin", "A=b+c"], Cmd = ["nginx", "-g", "daemon off;"] },
            RootFs = new RootFs { DiffIds = [Digest.Parse(D1), Digest.Parse(D2)] },
            History = [new HistoryEntry { CreatedBy = "copy site/ -> /var/www/html/" }],
        },
    };

    private static ImageState? Read(string json) => StepEntryJson.Read(Encoding.UTF8.GetBytes(json));

    [Fact]
    public void An_entry_reads_back_as_written()
    {
        var state = State();

        var got = StepEntryJson.Read(StepEntryJson.Write(state));

        Assert.NotNull(got);
        Assert.Equal(state.Layers.Select(OciJsonOf), got.Layers.Select(OciJsonOf));
        Assert.Equal(OciJson.Serialize(state.Config), OciJson.Serialize(got.Config));
    }

    private static string OciJsonOf(Descriptor d) =>
        Encoding.UTF8.GetString(OciJson.Serialize(new ImageIndex { Manifests = [d] }));

    [Fact]
    public void An_entry_in_the_form_an_earlier_kiln_wrote_reads()
    {
        // Escaped '+' and members in another order, as the serializer context of earlier versions wrote them.
        var got = Read("{\"schemaVersion\":1,\"state\":{\"config\":{\"created\":\"1970-01-01T00:00:00Z\",\"architecture\":\"amd64\",\"os\":\"linux\","
            + "\"config\":{},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" + D1 + "\"]},\"history\":[]},"
            + "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\\u002Bgzip\",\"digest\":\"" + L1 + "\",\"size\":10,\"annotations\":null,\"platform\":null}]}}");

        Assert.NotNull(got);
        Assert.Equal(MediaTypes.LayerGzip, got.Layers.Single().MediaType);
        Assert.Equal(L1, got.Layers.Single().Digest.Value);
        Assert.Equal(D1, got.Config.RootFs.DiffIds.Single().Value);
    }

    [Fact]
    public void Unknown_members_are_skipped()
    {
        var json = Encoding.UTF8.GetString(StepEntryJson.Write(State()));
        json = json.Replace("{\"schemaVersion\":1,", "{\"later\":{\"x\":[1,{\"y\":null}]},\"schemaVersion\":1,", StringComparison.Ordinal)
            .Replace("\"state\":{", "\"state\":{\"more\":[true],", StringComparison.Ordinal);

        Assert.NotNull(Read(json));
    }

    [Theory]
    [InlineData("")]
    [InlineData("null")]
    [InlineData("[]")]
    [InlineData("{}")]
    [InlineData("{\"schemaVersion\":1}")]
    [InlineData("{\"schemaVersion\":1,\"state\":null}")]
    [InlineData("{\"schemaVersion\":1,\"state\":{}}")]
    [InlineData("{\"schemaVersion\":1,\"state\":{\"layers\":[],\"config\":null}}")]
    [InlineData("{\"schemaVersion\":1,\"state\":{\"layers\":null,\"config\":{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}}}")]
    [InlineData("{\"schemaVersion\":1,\"state\":{\"layers\":{},\"config\":{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}}}")]
    [InlineData("{\"schemaVersion\":1,\"state\":{\"layers\":[null],\"config\":{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"SHA\"]}}}}")]
    [InlineData("{\"schemaVersion\":1,\"state\":{\"layers\":[],\"config\":{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"SHA\"]}}}}")]
    [InlineData("{\"schemaVersion\":1,\"state\":{\"layers\":[],\"config\":{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":null}}}}")]
    [InlineData("{\"schemaVersion\":\"1\",\"state\":{\"layers\":[],\"config\":{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}}}")]
    [InlineData("{\"schemaVersion\":2,\"state\":{\"layers\":[],\"config\":{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}}}")]
    [InlineData("{\"schemaVersion\":1,\"state\":{\"layers\":[],\"config\":{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}}}{}")]
    [InlineData("{\"schemaVersion\":1,\"state\":{\"layers\":[],\"config\":{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}")]
    [InlineData("{\"schemaVersion\":1,\"state\":nu")]
    public void Anything_else_is_no_entry(string json) => Assert.Null(Read(json.Replace("SHA", D1, StringComparison.Ordinal)));

    [Fact]
    public void The_smallest_valid_entry_reads()
    {
        // The base of the cases above, so that each of them fails for its own change.
        var got = Read("{\"schemaVersion\":1,\"state\":{\"layers\":[],\"config\":{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}}}");

        Assert.NotNull(got);
        Assert.Empty(got.Layers);
    }
}
