using System.Text;
using Kiln.Oci.Registry;

namespace Kiln.Oci.Tests.Registry;

/// <summary>What a registry can send that the client must refuse: documents too large, content under another
/// digest, a blob of another size.</summary>
public sealed class MisbehavingRegistryTests
{
    private static RegistryClient Client(FakeHttpServer server) =>
        new($"127.0.0.1:{server.Port}", new RegistryClientOptions { Insecure = true, CertsDirectory = null, MaxAttempts = 1 });

    [Fact]
    public async Task A_registry_that_answers_plain_http_to_tls_is_named_as_such_with_the_way_to_allow_it()
    {
        using var server = new FakeHttpServer(c => c.Response.StatusCode = 200);
        string host = $"127.0.0.1:{server.Port}";
        using var client = new RegistryClient(host, new RegistryClientOptions { CertsDirectory = null, MaxAttempts = 2 });
        var e = await Assert.ThrowsAsync<RegistryException>(() => client.PingAsync());
        Assert.Contains(host, e.Message);
        Assert.Contains("answers plain HTTP", e.Message);
        Assert.Contains("--insecure", e.Message);
        Assert.Contains("insecure = true", e.Message);

        // A port where nothing listens is not mistaken for plain HTTP.
        using var closed = new RegistryClient($"127.0.0.1:{Live.RegistryServer.FreePort()}",
            new RegistryClientOptions { CertsDirectory = null, MaxAttempts = 1 });
        var unreachable = await Assert.ThrowsAsync<RegistryException>(() => closed.PingAsync());
        Assert.DoesNotContain("plain HTTP", unreachable.Message);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Refuses_a_manifest_over_4_MiB_with_or_without_a_content_length(bool declared)
    {
        var big = Encoding.UTF8.GetBytes("{\"schemaVersion\":2,\"pad\":\"" + new string('x', 5 << 20) + "\"}");
        using var server = new FakeHttpServer(c =>
        {
            c.Response.ContentType = MediaTypes.ImageManifest;
            if (declared)
            {
                c.Response.ContentLength64 = big.Length;
            }
            else
            {
                c.Response.SendChunked = true;
            }
            try
            {
                c.Response.OutputStream.Write(big);
            }
            catch (System.Net.HttpListenerException)
            {
                // The client hangs up once it has seen enough.
            }
        });
        using var client = Client(server);
        var e = await Assert.ThrowsAsync<RegistryException>(() => client.GetManifestAsync("web", "v1"));
        Assert.Equal(RegistryErrorKind.Refused, e.Kind);
        Assert.Contains("4 MiB", e.Message);
    }

    [Fact]
    public async Task Refuses_a_manifest_whose_content_is_not_the_digest_asked_for()
    {
        var served = Encoding.UTF8.GetBytes("{\"schemaVersion\":2,\"mediaType\":\"" + MediaTypes.ImageIndex + "\",\"manifests\":[]}");
        var asked = Digest.Compute("something else"u8);
        using var server = new FakeHttpServer(c =>
        {
            c.Response.ContentType = MediaTypes.ImageIndex;
            c.Response.OutputStream.Write(served);
        });
        using var client = Client(server);
        var e = await Assert.ThrowsAsync<RegistryException>(() => client.GetManifestAsync("web", asked.Value));
        Assert.Equal(RegistryErrorKind.Refused, e.Kind);
        Assert.Contains(asked.Value, e.Message);
        var byTag = await client.GetManifestAsync("web", "v1");
        Assert.Equal(Digest.Compute(served), byTag.Descriptor.Digest);
        Assert.Equal(MediaTypes.ImageIndex, byTag.Descriptor.MediaType);
    }

    [Fact]
    public async Task Refuses_a_blob_whose_declared_length_is_not_the_descriptor_size()
    {
        var content = "twelve bytes"u8.ToArray();
        var d = new Descriptor { MediaType = MediaTypes.LayerTar, Digest = Digest.Compute(content), Size = 5 };
        using var server = new FakeHttpServer(c =>
        {
            c.Response.ContentLength64 = content.Length;
            c.Response.OutputStream.Write(content);
        });
        using var client = Client(server);
        var e = await Assert.ThrowsAsync<RegistryException>(() => client.OpenBlobAsync("web", d));
        Assert.Equal(RegistryErrorKind.Refused, e.Kind);
        Assert.Contains("12 bytes", e.Message);
    }
}
