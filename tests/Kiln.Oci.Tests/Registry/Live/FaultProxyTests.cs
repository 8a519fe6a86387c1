using Kiln.Oci.Registry;
using static Kiln.Oci.Tests.Registry.Live.FaultProxy;

namespace Kiln.Oci.Tests.Registry.Live;

[Trait("Tier", "Slow")] // starts docker-registry behind a fault-injecting proxy
public sealed class FaultProxyTests
{
    private static RegistryClient Client(string host, long chunk = 0, int attempts = 6) => new(host, new RegistryClientOptions
    {
        Insecure = true,
        CertsDirectory = null,
        ChunkSize = chunk,
        MaxAttempts = attempts,
        RetryBaseDelay = TimeSpan.FromMilliseconds(50),
        RetryMaxDelay = TimeSpan.FromSeconds(2),
        StallTimeout = TimeSpan.FromSeconds(2),
    });

    private static async Task PullDirectAsync(RegistryServer server, string repository, TestImage image, string tag)
    {
        using var direct = Client(server.Host);
        await PlainRegistryTests.PullAndCompareAsync(direct, repository, image, tag);
    }

    [Theory]
    [InlineData(0, "/blobs/uploads/", "PUT")]
    [InlineData(2_000_000, "/blobs/uploads/", "PATCH")]
    public async Task A_push_survives_a_connection_reset_halfway_through_a_large_blob(long chunk, string path, string method)
    {
        await using var server = await RegistryServer.StartAsync();
        await using var proxy = new FaultProxy(server.Port);
        var image = TestImage.Create(21, 6_000_000);
        proxy.Add(new Fault(FaultKind.ResetUpload, method, path, AfterBytes: 3_000_000));
        using (var client = Client(proxy.Host, chunk))
        {
            await PlainRegistryTests.PushAsync(client, "web", image, "v1");
        }
        Assert.Single(proxy.Injected);
        await PullDirectAsync(server, "web", image, "v1");
    }

    [Theory]
    [InlineData(FaultKind.ResetDownload)]
    [InlineData(FaultKind.Stall)]
    public async Task A_pull_resumes_a_blob_after_a_reset_or_a_stall_halfway(FaultKind kind)
    {
        await using var server = await RegistryServer.StartAsync();
        await using var proxy = new FaultProxy(server.Port);
        var image = TestImage.Create(22, 5_000_000);
        using (var direct = Client(server.Host))
        {
            await PlainRegistryTests.PushAsync(direct, "web", image, "v1");
        }
        proxy.Add(new Fault(kind, "GET", "/blobs/sha256:", AfterBytes: 2_500_000));
        using var client = Client(proxy.Host);
        await PlainRegistryTests.PullAndCompareAsync(client, "web", image, "v1");
        Assert.Single(proxy.Injected);
    }

    [Fact]
    public async Task Push_and_pull_complete_through_500s_and_429s()
    {
        await using var server = await RegistryServer.StartAsync();
        await using var proxy = new FaultProxy(server.Port);
        var image = TestImage.Create(23, 1000, 200_000);
        proxy.Add(new Fault(FaultKind.Status500, "HEAD", "/blobs/"));
        proxy.Add(new Fault(FaultKind.Status429, "POST", "/blobs/uploads/"));
        proxy.Add(new Fault(FaultKind.Status500, "PUT", "/manifests/"));
        proxy.Add(new Fault(FaultKind.Status500, "HEAD", "/manifests/"));
        proxy.Add(new Fault(FaultKind.Status429, "GET", "/manifests/"));
        proxy.Add(new Fault(FaultKind.Status500, "GET", "/blobs/sha256:"));
        using var client = Client(proxy.Host);
        await PlainRegistryTests.PushAsync(client, "web", image, "v1");
        await PlainRegistryTests.PullAndCompareAsync(client, "web", image, "v1");
        Assert.Equal(6, proxy.Injected.Count);
    }

    [Fact]
    public async Task A_push_that_can_never_complete_fails_naming_the_blob()
    {
        await using var server = await RegistryServer.StartAsync();
        await using var proxy = new FaultProxy(server.Port);
        var image = TestImage.Create(24, 1_000_000);
        for (int i = 0; i < 10; i++)
        {
            proxy.Add(new Fault(FaultKind.ResetUpload, "PUT", "/blobs/uploads/", AfterBytes: 500_000));
        }
        using var client = Client(proxy.Host, attempts: 3);
        var (d, content) = image.Blobs[0];
        var e = await Assert.ThrowsAsync<RegistryException>(() => client.PushBlobAsync("web", d, _ => Task.FromResult<Stream>(new MemoryStream(content))));
        Assert.Contains(d.Digest.Value, e.Message);
        Assert.Contains("after 3 attempts", e.Message);
        // A try may be spent learning that the registry dropped the broken upload (Distribution does).
        Assert.InRange(proxy.Injected.Count, 2, 3);
        using var direct = Client(server.Host);
        Assert.Null(await direct.BlobSizeAsync("web", d.Digest));
    }
}
