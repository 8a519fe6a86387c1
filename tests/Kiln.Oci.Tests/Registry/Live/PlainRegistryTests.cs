using Kiln.Oci.Registry;

namespace Kiln.Oci.Tests.Registry.Live;

[Trait("Tier", "Slow")] // starts docker-registry
public sealed class PlainRegistryTests
{
    private static RegistryClient Client(RegistryServer server, long chunk = 1 << 20) =>
        new(server.Host, new RegistryClientOptions { Insecure = true, ChunkSize = chunk, CertsDirectory = null });

    internal static async Task PushAsync(RegistryClient client, string repository, TestImage image, string tag)
    {
        foreach (var (d, content) in image.Blobs)
        {
            await client.PushBlobAsync(repository, d, _ => Task.FromResult<Stream>(new MemoryStream(content)));
        }
        await client.PutManifestAsync(repository, tag, MediaTypes.ImageManifest, image.Manifest);
    }

    internal static async Task<byte[]> ReadAllAsync(Stream stream)
    {
        using var buffer = new MemoryStream();
        await stream.CopyToAsync(buffer);
        return buffer.ToArray();
    }

    internal static async Task PullAndCompareAsync(RegistryClient client, string repository, TestImage image, string tag)
    {
        var resolved = await client.ResolveManifestAsync(repository, tag);
        Assert.NotNull(resolved);
        Assert.Equal(image.ManifestDigest, resolved.Digest);
        var manifest = await client.GetManifestAsync(repository, resolved.Digest.Value);
        Assert.Equal(image.Manifest, manifest.Content);
        Assert.Equal(MediaTypes.ImageManifest, manifest.Descriptor.MediaType);
        foreach (var (d, content) in image.Blobs)
        {
            await using var stream = await client.OpenBlobAsync(repository, d);
            Assert.Equal(content, await ReadAllAsync(stream));
        }
    }

    [Fact]
    public async Task Pushes_blobs_and_a_manifest_and_pulls_them_back_with_the_same_digests()
    {
        await using var server = await RegistryServer.StartAsync();
        using var client = Client(server);
        await client.PingAsync();
        var image = TestImage.Create(1, 10, 3_000_000, 100_000);
        await PushAsync(client, "team/web", image, "v1");
        await PullAndCompareAsync(client, "team/web", image, "v1");
        Assert.Contains("v1", await client.ListTagsAsync("team/web"));
    }

    [Fact]
    public async Task Skips_a_blob_the_registry_has_and_mounts_one_from_another_repository()
    {
        await using var server = await RegistryServer.StartAsync();
        using var client = Client(server);
        var image = TestImage.Create(2, 50_000);
        var (d, content) = image.Blobs[0];
        Func<CancellationToken, Task<Stream>> open = _ => Task.FromResult<Stream>(new MemoryStream(content));
        Assert.Equal(BlobPushResult.Uploaded, await client.PushBlobAsync("a", d, open));
        Assert.Equal(BlobPushResult.Present, await client.PushBlobAsync("a", d, open));
        Assert.Equal(BlobPushResult.Mounted, await client.PushBlobAsync("b", d, open, mountFrom: "a"));
        Assert.Equal(d.Size, await client.BlobSizeAsync("b", d.Digest));
    }

    [Fact]
    public async Task Monolithic_and_chunked_uploads_give_the_same_blob()
    {
        await using var server = await RegistryServer.StartAsync();
        using var mono = Client(server, chunk: 0);
        using var chunked = Client(server, chunk: 100_000);
        var image = TestImage.Create(3, 777_777);
        var (d, content) = image.Blobs[0];
        Assert.Equal(BlobPushResult.Uploaded, await chunked.PushBlobAsync("chunked", d, _ => Task.FromResult<Stream>(new MemoryStream(content))));
        Assert.Equal(BlobPushResult.Uploaded, await mono.PushBlobAsync("mono", d, _ => Task.FromResult<Stream>(new MemoryStream(content))));
        foreach (var repo in new[] { "chunked", "mono" })
        {
            await using var stream = await mono.OpenBlobAsync(repo, d);
            Assert.Equal(content, await ReadAllAsync(stream));
        }
    }

    [Fact]
    public async Task Refuses_a_blob_tampered_with_in_the_registry_storage()
    {
        await using var server = await RegistryServer.StartAsync();
        using var client = Client(server);
        var image = TestImage.Create(4, 200_000);
        await PushAsync(client, "web", image, "v1");
        var (d, content) = image.Blobs[0];
        string data = Path.Combine(server.StorageDirectory, "docker/registry/v2/blobs/sha256", d.Digest.Hex[..2], d.Digest.Hex, "data");
        var tampered = (byte[])content.Clone();
        tampered[^1] ^= 0xff;
        await File.WriteAllBytesAsync(data, tampered);
        await using var stream = await client.OpenBlobAsync("web", d);
        var e = await Assert.ThrowsAsync<RegistryException>(() => ReadAllAsync(stream));
        Assert.Equal(RegistryErrorKind.Refused, e.Kind);
        Assert.Contains(d.Digest.Value, e.Message);
        Assert.Contains("hashes to", e.Message);
    }

    [Fact]
    public async Task Referrers_fall_back_to_the_tag_schema_where_the_registry_has_no_referrers_api()
    {
        await using var server = await RegistryServer.StartAsync();
        using var client = Client(server);
        var image = TestImage.Create(5, 10);
        await PushAsync(client, "web", image, "v1");
        Assert.Empty(await client.GetReferrersAsync("web", image.ManifestDigest));
        var sbom = TestImage.Create(6, 20);
        await PushAsync(client, "web", sbom, sbom.ManifestDigest.Value);
        var entry = new Descriptor { MediaType = MediaTypes.ImageManifest, Digest = sbom.ManifestDigest, Size = sbom.Manifest.Length };
        await client.AddReferrerToFallbackAsync("web", image.ManifestDigest, new Referrer(entry, "application/example.sbom"));
        await client.AddReferrerToFallbackAsync("web", image.ManifestDigest, new Referrer(entry, "application/example.sbom"));
        var referrers = await client.GetReferrersAsync("web", image.ManifestDigest);
        var only = Assert.Single(referrers);
        Assert.Equal(sbom.ManifestDigest, only.Descriptor.Digest);
        Assert.Equal("application/example.sbom", only.ArtifactType);
        Assert.Empty(await client.GetReferrersAsync("web", image.ManifestDigest, "application/other"));
    }

    [Fact]
    public async Task A_missing_manifest_resolves_to_null_and_a_missing_blob_is_not_found()
    {
        await using var server = await RegistryServer.StartAsync();
        using var client = Client(server);
        Assert.Null(await client.ResolveManifestAsync("nothing", "v1"));
        var d = new Descriptor { MediaType = MediaTypes.LayerGzip, Digest = Digest.Compute("x"u8), Size = 1 };
        var e = await Assert.ThrowsAsync<RegistryException>(() => client.OpenBlobAsync("nothing", d));
        Assert.Equal(RegistryErrorKind.NotFound, e.Kind);
    }
}
