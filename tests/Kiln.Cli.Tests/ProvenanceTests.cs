using System.Text.Json;
using Kiln.Build.Tests.Provenance;
using Kiln.Oci.Tests.Registry.Live;

namespace Kiln.Cli.Tests;

/// <summary>The SBOM and referrers of examples/web's web, from the shared cold build.</summary>
[Collection(ExampleWebCollection.Name)]
[Trait("Tier", "Slow")] // builds examples/web: a Debian bootstrap and packages from the mirror
public sealed class ProvenanceWebTests
{
    private readonly ExampleWebFixture _web;

    public ProvenanceWebTests(ExampleWebFixture web)
    {
        _web = web;
        Assert.True(web.Cold.ExitCode == 0, "cold build of examples/web failed:\n" + web.Cold.All);
    }

    [Fact]
    public void Web_has_an_sbom_listing_nginx_light_and_its_referrers_are_listed()
    {
        var sbom = KilnProcess.Run(_web.Store.Path, "sbom", "web");
        Assert.True(sbom.ExitCode == 0, sbom.Stderr);
        using var doc = JsonDocument.Parse(sbom.Stdout);
        SpdxStructure.AssertValid(doc.RootElement);
        var nginx = doc.RootElement.GetProperty("packages").EnumerateArray().Single(p => p.GetProperty("name").GetString() == "nginx-light");
        Assert.Matches("^[0-9][A-Za-z0-9.+~:-]*$", nginx.GetProperty("versionInfo").GetString()!);
        Assert.StartsWith("built package from: nginx ", nginx.GetProperty("sourceInfo").GetString(), StringComparison.Ordinal);
        Assert.Contains(doc.RootElement.GetProperty("files").EnumerateArray(), f => f.GetProperty("fileName").GetString() == "./usr/sbin/nginx");

        using var file = new TempDir("kiln-sbom");
        var written = KilnProcess.Run(_web.Store.Path, "sbom", "web", "-o", file.Sub("web.spdx.json"));
        Assert.True(written.ExitCode == 0, written.All);
        Assert.Equal(sbom.Stdout, File.ReadAllText(file.Sub("web.spdx.json")));

        var inspect = KilnProcess.Run(_web.Store.Path, "inspect", "web", "--json");
        Assert.True(inspect.ExitCode == 0, inspect.All);
        using var i = JsonDocument.Parse(inspect.Stdout);
        var types = i.RootElement.GetProperty("referrers").EnumerateArray().Select(r => r.GetProperty("artifactType").GetString()).ToList();
        Assert.Equal(["application/spdx+json", "application/vnd.kiln.build-record.v1+json", "application/vnd.kiln.test-results.v1+json"], types);
    }
}

/// <summary>Referrers of a tiny image in the store (gc keeps them with their subject) and through a registry after a
/// push; a promotion with --to moves the channel tag by digest.</summary>
[Trait("Tier", "Slow")] // starts docker-registry
public sealed class ReferrerPushTests : IAsyncLifetime
{
    private readonly TempDir _store = new("kiln-store");
    private readonly TempDir _work = new("kiln-registry-work");
    private RegistryServer _registry = null!;

    public async Task InitializeAsync() => _registry = await RegistryServer.StartAsync();

    public async Task DisposeAsync()
    {
        await _registry.DisposeAsync();
        _store.Dispose();
        _work.Dispose();
    }

    private KilnProcess.Result Kiln(params string[] args)
    {
        var psi = KilnProcess.StartInfo(_store.Path, args);
        psi.Environment["REGISTRY_AUTH_FILE"] = _work.Sub("auth.json");
        return KilnProcess.Run(psi, TimeSpan.FromMinutes(5));
    }

    private static string Yaml(string greeting) => $"channels:\n  staging: [bake]\nimages:\n  tiny:\n    from: scratch\n    steps:\n{TinyContext.RootStep}"
        + $"      - run: echo {greeting} > /etc/greeting\n    test:\n      file: {{/etc/greeting: {{contains: {greeting}}}}}\n";

    private List<(string Type, string Digest)> Referrers(string image)
    {
        var r = Kiln("inspect", image, "--json");
        Assert.True(r.ExitCode == 0, r.All);
        using var doc = JsonDocument.Parse(r.Stdout);
        return [.. doc.RootElement.GetProperty("referrers").EnumerateArray().Select(e => (e.GetProperty("artifactType").GetString()!, e.GetProperty("digest").GetString()!))];
    }

    [Fact]
    public void Referrers_live_with_their_image_and_travel_with_a_push()
    {
        using var ctx = new TinyContext(Yaml("one"));
        Assert.True(Kiln("build", ctx.Path) is { ExitCode: 0 }, "build failed");
        var first = Referrers("tiny");
        Assert.Equal(["application/vnd.kiln.build-record.v1+json", "application/vnd.kiln.test-results.v1+json"], first.Select(r => r.Type));
        var digest = StoreReader.ManifestDigest(_store.Path, "tiny");

        var gc = Kiln("gc");
        Assert.True(gc.ExitCode == 0, gc.All);
        Assert.Equal(first, Referrers("tiny"));
        Assert.All(first, r => Assert.True(File.Exists(StoreReader.BlobPath(_store.Path, r.Digest)), r.Digest + " was collected"));
        var verify = Kiln("verify");
        Assert.True(verify.ExitCode == 0, verify.All);

        string repo = $"{_registry.Host}/team/tiny";
        var push = Kiln("push", "tiny", repo + ":v1", "--insecure");
        Assert.True(push.ExitCode == 0, push.All);
        Assert.Contains("pushed 2 referrers", push.Stdout, StringComparison.Ordinal);
        // docker-registry 2.8 has no referrers API: the fallback tag's index lists them.
        var fallback = KilnProcess.Tool("skopeo", "inspect", "--tls-verify=false", "--raw", $"docker://{repo}:sha256-{digest["sha256:".Length..]}");
        Assert.True(fallback.ExitCode == 0, fallback.All);
        using (var index = JsonDocument.Parse(fallback.Stdout))
        {
            var listed = index.RootElement.GetProperty("manifests").EnumerateArray()
                .Select(m => (m.GetProperty("artifactType").GetString()!, m.GetProperty("digest").GetString()!)).OrderBy(m => m.Item1, StringComparer.Ordinal).ToList();
            Assert.Equal(first, listed);
        }
        foreach (var (_, referrer) in first)
        {
            var raw = KilnProcess.Tool("skopeo", "inspect", "--tls-verify=false", "--raw", $"docker://{repo}@{referrer}");
            Assert.True(raw.ExitCode == 0, raw.All);
            using var m = JsonDocument.Parse(raw.Stdout);
            Assert.Equal(digest, m.RootElement.GetProperty("subject").GetProperty("digest").GetString());
        }

        var promote = Kiln("promote", "tiny", "staging", "-f", ctx.Path, "--to", repo, "--insecure");
        Assert.True(promote.ExitCode == 0, promote.All);
        var moved = KilnProcess.Tool("skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}", $"docker://{repo}:staging");
        Assert.True(moved.ExitCode == 0, moved.All);
        Assert.Equal(digest, moved.Stdout.Trim());

        // A new image takes the name: gc drops the old image's referrers with it.
        ctx.Write("kiln.yaml", Yaml("two"));
        Assert.True(Kiln("build", ctx.Path) is { ExitCode: 0 }, "second build failed");
        Assert.True(Kiln("gc") is { ExitCode: 0 }, "gc failed");
        Assert.All(first, r => Assert.False(File.Exists(StoreReader.BlobPath(_store.Path, r.Digest)), r.Digest + " outlived its subject"));
        Assert.DoesNotContain(digest, File.ReadAllText(Path.Combine(_store.Path, "index.json")), StringComparison.Ordinal);
        Assert.Equal(2, Referrers("tiny").Count);
    }
}
