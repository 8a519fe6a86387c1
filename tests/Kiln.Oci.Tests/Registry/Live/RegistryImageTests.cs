using Kiln.Oci.Image;
using Kiln.Oci.Layout;
using Kiln.Oci.Registry;
using Kiln.Oci.Tests.Image;

namespace Kiln.Oci.Tests.Registry.Live;

/// <summary>The registry as an image source and sink, through the one copy routine.</summary>
[Trait("Tier", "Slow")] // starts docker-registry
public sealed class RegistryImageTests
{
    private static RegistryClient Client(RegistryServer server) =>
        new(server.Host, new RegistryClientOptions { Insecure = true, CertsDirectory = null, MaxAttempts = 2 });

    [Fact]
    public async Task An_index_copies_in_and_between_repositories_by_mount_and_out_to_a_layout_with_every_digest_kept()
    {
        await using var server = await RegistryServer.StartAsync();
        using var client = Client(server);
        var memory = new MemorySource();
        var index = memory.Index(memory.Image("amd", 3, new Platform { Architecture = "amd64", Os = "linux" }),
            memory.Image("arm", 2, new Platform { Architecture = "arm64", Os = "linux" }));
        int blobs = memory.Blobs.Count - 3; // less the two manifests and the index

        var pushed = await ImageCopier.CopyAsync(memory, index, new RegistryImageSink(client, "team/app"), new ImageCopyOptions { Name = "v1" });
        Assert.Equal(blobs, pushed.BlobsCopied);
        Assert.Equal(3, pushed.ManifestsWritten);
        var source = new RegistryImageSource(client, "team/app");
        Assert.Equal(index.Digest, (await source.ResolveAsync("v1")).Digest);

        // Another repository of the same registry: every blob mounted, none uploaded.
        var mounted = await ImageCopier.CopyAsync(source, await source.ResolveAsync("v1"), new RegistryImageSink(client, "team/copy"),
            new ImageCopyOptions { Name = "v1" });
        Assert.Equal((0, blobs), (mounted.BlobsCopied, mounted.BlobsMounted));
        Assert.Equal(index.Digest, (await new RegistryImageSource(client, "team/copy").ResolveAsync("v1")).Digest);

        // Again: all present (HEAD), nothing mounted or uploaded.
        var again = await ImageCopier.CopyAsync(source, index, new RegistryImageSink(client, "team/copy"), new ImageCopyOptions { Name = "v2" });
        Assert.Equal((0, 0, blobs), (again.BlobsCopied, again.BlobsMounted, again.BlobsSkipped));

        var layout = Directory.CreateTempSubdirectory("kiln-layout-").FullName;
        try
        {
            await ImageCopier.CopyAsync(new RegistryImageSource(client, "team/copy"), index, new LayoutImageSink(layout), new ImageCopyOptions { Name = "v1" });
            var copied = new LayoutImageSource(layout);
            Assert.Equal(index, await copied.ResolveAsync("v1") with { Annotations = null });
            foreach (var (digest, bytes) in memory.Blobs)
            {
                Assert.Equal(bytes, await File.ReadAllBytesAsync(Path.Combine(layout, "blobs", "sha256", digest.Hex)));
            }
        }
        finally
        {
            Directory.Delete(layout, true);
        }
    }

    [Fact]
    public async Task A_blob_whose_bytes_are_not_its_digest_is_refused_and_the_tag_is_never_written()
    {
        await using var server = await RegistryServer.StartAsync();
        using var client = Client(server);
        var memory = new MemorySource();
        var image = memory.Image("bad", 2);
        var manifest = OciJson.DeserializeManifest(memory.Blobs[image.Digest]);
        var layer = manifest.Layers[1];
        var tampered = (byte[])memory.Blobs[layer.Digest].Clone();
        tampered[^1] ^= 1;
        memory.Blobs[layer.Digest] = tampered;

        var error = await Assert.ThrowsAnyAsync<Exception>(() =>
            ImageCopier.CopyAsync(memory, image, new RegistryImageSink(client, "team/bad"), new ImageCopyOptions { Name = "v1" }));
        Assert.Contains(layer.Digest.Value, error.Message);
        Assert.Null(await client.ResolveManifestAsync("team/bad", "v1"));
        Assert.Null(await client.BlobSizeAsync("team/bad", layer.Digest));
    }
}
