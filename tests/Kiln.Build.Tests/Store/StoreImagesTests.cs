using Kiln.Build.Store;
using Kiln.Oci;
using Kiln.Oci.Image;
using Kiln.Oci.Layout;

namespace Kiln.Build.Tests.Store;

public sealed class StoreImagesTests : IDisposable
{
    private readonly TestStore _a = new();
    private readonly TestStore _b = new();
    private readonly string _layout = Directory.CreateTempSubdirectory("kiln-layout-test").FullName;

    public void Dispose()
    {
        _a.Dispose();
        _b.Dispose();
        Directory.Delete(_layout, recursive: true);
    }

    private async Task<Descriptor> ImageAsync()
    {
        var state = await _a.AddLayerAsync(TestStore.Empty, "a.txt", "a");
        state = await _a.AddLayerAsync(state, "b.txt", "b");
        state = await _a.AddLayerAsync(state, "c.txt", "c");
        var desc = await _a.Store.WriteImageAsync(state);
        await _a.Store.TagAsync("web", desc);
        return desc;
    }

    [Fact]
    public async Task An_image_copied_from_the_store_to_a_layout_and_into_another_store_keeps_every_digest()
    {
        var desc = await ImageAsync();
        var source = new StoreImageSource(_a.Store);
        var tagged = await source.ResolveAsync("web");
        var toLayout = await ImageCopier.CopyAsync(source, tagged, new LayoutImageSink(_layout), new ImageCopyOptions { Name = "web" });
        Assert.Equal(4, toLayout.BlobsCopied);

        var layout = new LayoutImageSource(_layout);
        var back = await ImageCopier.CopyAsync(layout, await layout.ResolveAsync("web"), new StoreImageSink(_b.Store), new ImageCopyOptions { Name = "back" });
        Assert.Equal(desc.Digest, back.Root.Digest);
        Assert.Equal(desc.Digest, _b.Store.TryGetTag("back")!.Digest);
        var (manifest, _) = await _a.Store.ReadImageAsync(desc.Digest);
        foreach (var blob in manifest.Layers.Append(manifest.Config).Append(desc))
        {
            Assert.Equal(await _a.Store.ReadBlobAsync(blob.Digest), await _b.Store.ReadBlobAsync(blob.Digest));
        }

        var again = await ImageCopier.CopyAsync(layout, await layout.ResolveAsync("web"), new StoreImageSink(_b.Store));
        Assert.Equal((0, 4), (again.BlobsCopied, again.BlobsSkipped));
    }

    [Fact]
    public async Task A_blob_that_does_not_match_its_digest_is_refused_and_not_stored()
    {
        var bytes = "the real content"u8.ToArray();
        var blob = new Descriptor { MediaType = MediaTypes.LayerTar, Digest = Digest.Compute(bytes), Size = bytes.Length };
        var sink = new StoreImageSink(_b.Store);
        await Assert.ThrowsAsync<StoreException>(() => sink.WriteBlobAsync(blob, new MemoryStream("the fake content"u8.ToArray())));
        await Assert.ThrowsAsync<ImageException>(() => sink.WriteBlobAsync(blob, new MemoryStream("the real content!"u8.ToArray())));
        Assert.False(_b.Store.HasBlob(blob.Digest));
        Assert.Empty(Directory.GetFiles(_b.IngestDir));
    }

    [Fact]
    public async Task A_missing_name_is_refused_naming_the_names_there()
    {
        await ImageAsync();
        var ex = await Assert.ThrowsAsync<ImageException>(() => new StoreImageSource(_a.Store).ResolveAsync("api"));
        Assert.Contains("no image tagged 'api' (tags: web)", ex.Message);
    }
}
