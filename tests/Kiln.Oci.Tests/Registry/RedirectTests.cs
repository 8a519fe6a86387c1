using System.Net;
using System.Text;
using Kiln.Oci.Registry;
using Kiln.Oci.Tests.Registry.Live;

namespace Kiln.Oci.Tests.Registry;

/// <summary>A fake registry that asks for Basic auth and redirects blob reads to a second listener (storage
/// elsewhere), both in this process on 127.0.0.1; each records the Authorization headers it saw.</summary>
public sealed class RedirectTests
{
    [Fact]
    public async Task A_blob_redirected_to_another_host_is_fetched_without_the_credentials()
    {
        var content = Encoding.UTF8.GetBytes("layer bytes from storage");
        var d = new Descriptor { MediaType = MediaTypes.LayerTar, Digest = Digest.Compute(content), Size = content.Length };
        using var storage = new FakeHttpServer(c =>
        {
            c.Response.ContentLength64 = content.Length;
            c.Response.OutputStream.Write(content);
        });
        string expected = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("user:pw-of-registry"));
        using var registry = new FakeHttpServer(c =>
        {
            if (c.Request.Headers["Authorization"] != expected)
            {
                c.Response.StatusCode = 401;
                c.Response.AddHeader("WWW-Authenticate", "Basic realm=\"fake\"");
                return;
            }
            if (c.Request.Url!.AbsolutePath.Contains("/blobs/"))
            {
                c.Response.StatusCode = 307;
                c.Response.RedirectLocation = $"http://127.0.0.1:{storage.Port}/bucket/{d.Digest.Hex}?signature=x";
                return;
            }
            c.Response.StatusCode = 200;
        });
        using var client = new RegistryClient($"127.0.0.1:{registry.Port}", new RegistryClientOptions
        {
            Insecure = true,
            CertsDirectory = null,
            MaxAttempts = 1,
            Credentials = (_, _, _) => Task.FromResult<RegistryCredential?>(new RegistryCredential("user", "pw-of-registry")),
        });
        await using var stream = await client.OpenBlobAsync("web", d);
        using var buffer = new MemoryStream();
        await stream.CopyToAsync(buffer);
        Assert.Equal(content, buffer.ToArray());
        Assert.Contains(registry.Seen, s => s.Path.Contains("/blobs/") && s.Authorization == expected);
        var fetched = Assert.Single(storage.Seen);
        Assert.StartsWith("/bucket/", fetched.Path);
        Assert.Null(fetched.Authorization);
    }
}
