using System.Diagnostics;
using System.Text.Json;
using Kiln.Oci.Tests.Registry.Live;
using Xunit.Abstractions;

namespace Kiln.Cli.Tests;

/// <summary>The remote cache with the real examples/web: the fixture's store (one cold build per test run) pushes its
/// cache to Debian's docker-registry on 127.0.0.1, and an empty store builds every image from it.</summary>
[Collection(ExampleWebCollection.Name)]
[Trait("Tier", "Slow")] // builds examples/web: a Debian bootstrap and packages from the mirror
public sealed class RemoteCacheWebTests(ExampleWebFixture fixture, ITestOutputHelper output)
{
    [Fact]
    public async Task An_empty_store_with_cache_from_builds_examples_web_running_no_step_with_the_same_digests()
    {
        Assert.True(fixture.Cold.ExitCode == 0, fixture.Cold.All);
        await using var registry = await RegistryServer.StartAsync();
        string repo = $"{registry.Host}/kiln/web-cache";
        // A fresh copy of the example: other tests of the collection change the fixture's context.
        using var ctx = new TempDir("kiln-web-cache-ctx");
        ExampleWebFixture.CopyTree(ExampleWebFixture.ExamplePath, ctx.Path);

        // The fixture's store has every step cached: this build runs none and pushes every entry it reuses.
        var push = Stopwatch.StartNew();
        var pushed = Build(fixture.Store.Path, ctx.Path, "--cache-to", repo);
        push.Stop();
        var digests = Digests(pushed);
        Assert.Equal(new[] { "base", "server", "server-os", "web", "web-os", "web-systemd", "web-systemd-os" }, digests.Keys.Order());
        foreach (var (name, (_, manifest)) in fixture.ColdImages)
        {
            Assert.Equal(manifest, digests[name]);
        }
        Assert.All(pushed.RootElement.GetProperty("images").EnumerateArray(), i => Assert.Equal(0, i.GetProperty("stepsRun").GetInt32()));

        using var empty = new TempDir("kiln-web-cache-store");
        var pull = Stopwatch.StartNew();
        var fromCache = Build(empty.Path, ctx.Path, "--cache-from", repo);
        pull.Stop();
        output.WriteLine($"push of the cache (every step reused): {push.Elapsed.TotalSeconds:0.0}s; " +
            $"empty store with --cache-from: {pull.Elapsed.TotalSeconds:0.0}s");
        Assert.Equal(digests, Digests(fromCache));
        foreach (var image in fromCache.RootElement.GetProperty("images").EnumerateArray())
        {
            var name = image.GetProperty("name").GetString();
            Assert.True(image.GetProperty("stepsRun").GetInt32() == 0, $"{name} ran steps: {image}");
            Assert.All(image.GetProperty("steps").EnumerateArray(), s => Assert.True(s.GetProperty("remote").GetBoolean(), $"{name}: {s}"));
            // Every tested image keeps its results: none is tested again.
            Assert.All(image.GetProperty("tests").EnumerateArray(),
                t => Assert.True(t.GetProperty("passed").GetBoolean() && t.GetProperty("remote").GetBoolean(), $"{name}: {t}"));
            Assert.Equal(digests[name!], StoreReader.ManifestDigest(empty.Path, name!));
        }
        Assert.NotEmpty(Image(fromCache, "web").GetProperty("tests").EnumerateArray());
        var verify = KilnProcess.Run(empty.Path, "verify");
        Assert.True(verify.ExitCode == 0, verify.All);
    }

    private static JsonDocument Build(string store, string context, params string[] extra)
    {
        var r = KilnProcess.Run(store, ["build", "--json", "--insecure", "--no-outputs", .. extra, context]);
        Assert.True(r.ExitCode == 0, r.All);
        return JsonDocument.Parse(r.Stdout);
    }

    private static JsonElement Image(JsonDocument json, string name) =>
        json.RootElement.GetProperty("images").EnumerateArray().First(i => i.GetProperty("name").GetString() == name);

    private static Dictionary<string, string> Digests(JsonDocument json) =>
        json.RootElement.GetProperty("images").EnumerateArray()
            .ToDictionary(i => i.GetProperty("name").GetString()!, i => i.GetProperty("digest").GetString()!);
}
