using System.Net;
using System.Text;
using Kiln.Oci.Registry;

namespace Kiln.Oci.Tests.Registry;

/// <summary>The referrers API (<c>GET /v2/NAME/referrers/DIGEST</c>) against a stand-in registry that has it, since
/// Debian's docker-registry (Distribution 2.8) has only the tag-schema fallback the live tests exercise.</summary>
public sealed class ReferrersTests
{
    private static readonly Digest Subject = Digest.Compute(Encoding.UTF8.GetBytes("the subject manifest"));
    private const string Sbom = "application/spdx+json";
    private const string TestResult = "application/vnd.kiln.test-result.v1+json";

    private static string Entry(string seed, string artifactType) =>
        $$"""{"mediaType":"{{MediaTypes.ImageManifest}}","digest":"{{Digest.Compute(Encoding.UTF8.GetBytes(seed))}}","size":{{100 + seed.Length}},"artifactType":"{{artifactType}}"}""";

    private static string Index(IEnumerable<string> entries, bool filtered = false) =>
        $$"""{"schemaVersion":2,"mediaType":"{{MediaTypes.ImageIndex}}","manifests":[{{string.Join(",", entries)}}]{{(filtered ? ",\"annotations\":{\"org.opencontainers.referrers.filtersApplied\":\"artifactType\"}" : "")}}}""";

    private static readonly (string Json, string Type)[] Both = [(Entry("sbom", Sbom), Sbom), (Entry("result", TestResult), TestResult)];

    private static void Send(HttpListenerContext c, string body)
    {
        c.Response.ContentType = MediaTypes.ImageIndex;
        c.Response.OutputStream.Write(Encoding.UTF8.GetBytes(body));
    }

    private static RegistryClient Client(FakeHttpServer server) =>
        new($"127.0.0.1:{server.Port}", new RegistryClientOptions { Insecure = true, CertsDirectory = null, MaxAttempts = 1 });

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Lists_referrers_through_the_api_filtered_by_artifact_type_whether_or_not_the_registry_filters(bool registryFilters)
    {
        using var server = new FakeHttpServer(c =>
        {
            if (c.Request.Url!.AbsolutePath != $"/v2/web/referrers/{Subject}")
            {
                c.Response.StatusCode = c.Request.Url.AbsolutePath == "/v2/" ? 200 : 404;
                return;
            }
            string? type = c.Request.QueryString["artifactType"];
            bool filter = registryFilters && type is not null;
            Send(c, Index(Both.Where(e => !filter || e.Type == type).Select(e => e.Json), filter));
        });
        using var client = Client(server);

        var all = await client.GetReferrersAsync("web", Subject);
        Assert.Equal([Sbom, TestResult], all.Select(r => r.ArtifactType));
        Assert.Equal(Digest.Compute(Encoding.UTF8.GetBytes("sbom")), all[0].Descriptor.Digest);

        var sboms = await client.GetReferrersAsync("web", Subject, Sbom);
        Assert.Equal([Sbom], sboms.Select(r => r.ArtifactType));
        Assert.Empty(await client.GetReferrersAsync("web", Subject, "application/vnd.none"));
        // The API answered: the fallback tag was never asked for.
        Assert.DoesNotContain(server.Seen, s => s.Path.Contains("/manifests/", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Falls_back_to_the_tag_schema_when_the_api_answers_404_and_finds_none_without_the_tag()
    {
        string tag = RegistryClient.ReferrersTag(Subject);
        bool tagged = true;
        using var server = new FakeHttpServer(c =>
        {
            string path = c.Request.Url!.AbsolutePath;
            if (path == $"/v2/web/manifests/{tag}" && tagged)
            {
                if (c.Request.HttpMethod != "HEAD")
                {
                    Send(c, Index(Both.Select(e => e.Json)));
                }
                else
                {
                    c.Response.ContentType = MediaTypes.ImageIndex;
                }
                return;
            }
            c.Response.StatusCode = path == "/v2/" ? 200 : 404;
        });
        using var client = Client(server);

        var results = await client.GetReferrersAsync("web", Subject, TestResult);
        Assert.Equal([TestResult], results.Select(r => r.ArtifactType));
        Assert.Contains(server.Seen, s => s.Path == $"/v2/web/referrers/{Subject}");
        Assert.Contains(server.Seen, s => s.Path == $"/v2/web/manifests/{tag}");
        Assert.Equal(2, (await client.GetReferrersAsync("web", Subject)).Count);

        tagged = false;
        Assert.Empty(await client.GetReferrersAsync("web", Subject));
    }

    [Fact]
    public async Task An_api_failure_other_than_404_is_an_error_not_an_empty_list()
    {
        using var server = new FakeHttpServer(c => c.Response.StatusCode = c.Request.Url!.AbsolutePath == "/v2/" ? 200 : 403);
        using var client = Client(server);
        var e = await Assert.ThrowsAsync<RegistryException>(() => client.GetReferrersAsync("web", Subject));
        Assert.Contains("listing referrers", e.Message);
    }
}
