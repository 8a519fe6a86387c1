using Kiln.Oci.Image;
using Kiln.Oci.Layout;
using Kiln.Oci.Tests.Image;

namespace Kiln.Oci.Tests.Layout;

public sealed class LayoutImageTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kiln-layout-test").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Sub(string name) => Path.Combine(_dir, name);

    private static Descriptor Blob(byte[] bytes) => new() { MediaType = MediaTypes.LayerTar, Digest = Digest.Compute(bytes), Size = bytes.Length };

    /// <summary>Everything in the layout but its fixed files: what a failed write must not leave.</summary>
    private static List<string> Leftovers(string layout) =>
        [.. Directory.EnumerateFileSystemEntries(layout, "*", SearchOption.AllDirectories)
            .Select(p => Path.GetRelativePath(layout, p))
            .Where(p => p is not ("blobs" or "oci-layout" or "index.json") && p != Path.Combine("blobs", "sha256"))];

    [Fact]
    public async Task A_blob_whose_bytes_do_not_match_its_digest_is_refused_and_nothing_is_named()
    {
        var sink = new LayoutImageSink(Sub("out"));
        var blob = Blob("the real content"u8.ToArray());
        var ex = await Assert.ThrowsAsync<ImageException>(() => sink.WriteBlobAsync(blob, new MemoryStream("the fake content"u8.ToArray())));
        Assert.Contains($"blob {blob.Digest} does not match its digest", ex.Message);
        Assert.Empty(Leftovers(Sub("out")));
        Assert.False(await sink.HasBlobAsync(blob));
    }

    [Theory]
    [InlineData("the real content plus more")]
    [InlineData("the real")]
    public async Task A_blob_of_another_size_is_refused_and_nothing_is_named(string content)
    {
        var sink = new LayoutImageSink(Sub("out"));
        var blob = Blob("the real content"u8.ToArray());
        var ex = await Assert.ThrowsAsync<ImageException>(() => sink.WriteBlobAsync(blob, new MemoryStream(System.Text.Encoding.UTF8.GetBytes(content))));
        Assert.Contains("its descriptor says", ex.Message);
        Assert.Empty(Leftovers(Sub("out")));
    }

    [Fact]
    public async Task An_image_copied_into_a_layout_and_on_keeps_every_digest_and_the_layouts_are_identical()
    {
        var memory = new MemorySource();
        var image = memory.Image("a", layers: 5);
        var first = await ImageCopier.CopyAsync(memory, image, new LayoutImageSink(Sub("one")), new ImageCopyOptions { Name = "web" });
        Assert.Equal(6, first.BlobsCopied);

        var one = new LayoutImageSource(Sub("one"));
        var tagged = await one.ResolveAsync("web");
        Assert.Equal(image.Digest, tagged.Digest);
        await ImageCopier.CopyAsync(one, tagged, new LayoutImageSink(Sub("two")), new ImageCopyOptions { Name = "web" });
        Assert.Equal(File.ReadAllBytes(Path.Combine(Sub("one"), "index.json")), File.ReadAllBytes(Path.Combine(Sub("two"), "index.json")));
        var back = new MemorySink();
        var two = new LayoutImageSource(Sub("two"));
        await ImageCopier.CopyAsync(two, await two.ResolveAsync("web"), back);
        Assert.Equal(memory.Blobs.Keys.Select(d => d.Value).Order(), back.Blobs.Keys.Select(d => d.Value).Order());
        Assert.All(back.Blobs, kv => Assert.Equal(memory.Blobs[kv.Key], kv.Value));

        var again = await ImageCopier.CopyAsync(one, tagged, new LayoutImageSink(Sub("two")), new ImageCopyOptions { Name = "web" });
        Assert.Equal((0, 6, 0L), (again.BlobsCopied, again.BlobsSkipped, again.BytesCopied));
    }

    [Fact]
    public async Task A_tag_replaces_the_entry_of_its_name_and_keeps_the_others_sorted()
    {
        var memory = new MemorySource();
        var a = memory.Image("a");
        var b = memory.Image("b");
        var sink = new LayoutImageSink(Sub("out"));
        await ImageCopier.CopyAsync(memory, a, sink, new ImageCopyOptions { Name = "web" });
        await ImageCopier.CopyAsync(memory, a, sink, new ImageCopyOptions { Name = "api" });
        await ImageCopier.CopyAsync(memory, b, sink, new ImageCopyOptions { Name = "web" });
        var index = new LayoutImageSource(Sub("out")).ReadIndex();
        Assert.Equal(["api", "web"], index.Manifests.Select(m => m.Annotations![Annotations.RefName]));
        Assert.Equal([a.Digest, b.Digest], index.Manifests.Select(m => m.Digest));
    }

    [Fact]
    public async Task A_missing_tag_is_refused_naming_the_tags_there()
    {
        var memory = new MemorySource();
        await ImageCopier.CopyAsync(memory, memory.Image("a"), new LayoutImageSink(Sub("out")), new ImageCopyOptions { Name = "web" });
        var ex = await Assert.ThrowsAsync<ImageException>(() => new LayoutImageSource(Sub("out")).ResolveAsync("api"));
        Assert.Equal($"oci:{Sub("out")}: no image tagged 'api' (tags: web)", ex.Message);
        var none = await Assert.ThrowsAsync<ImageException>(() => new LayoutImageSource(Sub("nothing")).ResolveAsync("web"));
        Assert.Contains("not an OCI image layout (no index.json)", none.Message);
    }

    [Fact]
    public async Task A_source_blob_of_another_size_is_refused_when_opened()
    {
        var memory = new MemorySource();
        var image = memory.Image("a");
        await ImageCopier.CopyAsync(memory, image, new LayoutImageSink(Sub("out")), new ImageCopyOptions { Name = "web" });
        var layer = OciJson.DeserializeManifest(memory.Blobs[image.Digest]).Layers[0];
        var ex = await Assert.ThrowsAsync<ImageException>(() => new LayoutImageSource(Sub("out")).OpenBlobAsync(layer with { Size = layer.Size + 1 }));
        Assert.Contains($"is {layer.Size} bytes, its descriptor says {layer.Size + 1}", ex.Message);
    }
}
