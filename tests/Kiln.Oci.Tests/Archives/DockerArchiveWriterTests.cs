using System.Text.Json;
using Kiln.Oci.Archives;

namespace Kiln.Oci.Tests.Archives;

public sealed class DockerArchiveWriterTests
{
    private static async Task<byte[]> WriteAsync(TestImage image, string repoTag)
    {
        var ms = new MemoryStream();
        await DockerArchiveWriter.WriteAsync(ms, image, image.Manifest, repoTag, new ArchiveOptions());
        return ms.ToArray();
    }

    [Fact]
    public async Task Writes_manifest_json_and_repositories_beside_the_oci_layout()
    {
        var image = new TestImage(("a", "a"), ("b", "b"));
        var entries = TestImage.Entries(await WriteAsync(image, "web"));
        Assert.Equal(["manifest.json", "repositories", "oci-layout", "index.json", "blobs/", "blobs/sha256/"], entries.Take(6).Select(e => e.Name));
        var names = entries.Select(e => e.Name).ToHashSet();

        using var manifest = JsonDocument.Parse(entries[0].Data);
        var item = Assert.Single(manifest.RootElement.EnumerateArray());
        Assert.Equal("blobs/sha256/" + image.Config.Digest.Hex, item.GetProperty("Config").GetString());
        Assert.Equal(["web:latest"], item.GetProperty("RepoTags").EnumerateArray().Select(t => t.GetString()));
        var layers = item.GetProperty("Layers").EnumerateArray().Select(l => l.GetString()!).ToList();
        Assert.Equal(image.Layers.Select(l => "blobs/sha256/" + l.Digest.Hex), layers);
        Assert.All(layers, l => Assert.Contains(l, names));
        Assert.Contains(item.GetProperty("Config").GetString()!, names);

        using var repositories = JsonDocument.Parse(entries[1].Data);
        Assert.Equal(image.Layers[^1].Digest.Hex, repositories.RootElement.GetProperty("web").GetProperty("latest").GetString());

        var index = OciJson.DeserializeIndex(entries[3].Data);
        var m = Assert.Single(index.Manifests);
        Assert.Equal(image.Manifest.Digest, m.Digest);
        Assert.Equal(["io.containerd.image.name", "org.opencontainers.image.ref.name"], m.Annotations!.Keys);
        Assert.Equal("latest", m.Annotations![Annotations.RefName]);
        Assert.Equal("web:latest", m.Annotations![Annotations.ImageName]);
    }

    [Theory]
    [InlineData("web:1.2", "web:1.2", "1.2")]
    [InlineData("registry.local:5000/team/web", "registry.local:5000/team/web:latest", "latest")]
    public async Task The_index_names_the_image_as_manifest_json_does(string repoTag, string name, string tag)
    {
        var entries = TestImage.Entries(await WriteAsync(new TestImage(("a", "a")), repoTag));
        using var manifest = JsonDocument.Parse(entries[0].Data);
        Assert.Equal([name], manifest.RootElement[0].GetProperty("RepoTags").EnumerateArray().Select(t => t.GetString()));
        var annotations = OciJson.DeserializeIndex(entries[3].Data).Manifests[0].Annotations!;
        Assert.Equal(name, annotations[Annotations.ImageName]);
        Assert.Equal(tag, annotations[Annotations.RefName]);
    }

    [Theory]
    [InlineData("web", "web", "latest")]
    [InlineData("web:1.2", "web", "1.2")]
    [InlineData("team/web:1", "team/web", "1")]
    [InlineData("registry.local:5000/web", "registry.local:5000/web", "latest")]
    [InlineData("localhost/web:x", "localhost/web", "x")]
    public void Names_split_into_repository_and_tag(string repoTag, string repo, string tag) =>
        Assert.Equal((repo, tag), DockerArchiveWriter.SplitRepoTag(repoTag));

    [Fact]
    public async Task Two_writes_are_byte_identical()
    {
        var image = new TestImage(("a", "a"));
        Assert.Equal(await WriteAsync(image, "web"), await WriteAsync(image, "web"));
    }
}
