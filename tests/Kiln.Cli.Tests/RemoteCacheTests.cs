using System.Diagnostics;
using System.Text.Json;
using Kiln.Oci.Tests.Registry.Live;
using Xunit.Abstractions;

namespace Kiln.Cli.Tests;

/// <summary><c>kiln build --cache-to/--cache-from</c> against Debian's docker-registry on 127.0.0.1: a chain of tiny
/// busybox images, tested, built into one store and then into empty ones from the registry alone.</summary>
[Trait("Tier", "Slow")] // starts docker-registry
public sealed class RemoteCacheTests(ITestOutputHelper output) : IDisposable
{
    private readonly List<TempDir> _stores = [];

    public void Dispose()
    {
        foreach (var store in _stores)
        {
            store.Dispose();
        }
    }

    private string NewStore()
    {
        var store = new TempDir("kiln-store");
        _stores.Add(store);
        return store.Path;
    }

    private const string Spec = """
        file:
          /etc/app: {contains: [app]}
        command:
          "cat /etc/base": {exit-status: 0, stdout: [base]}
        """;

    private static string Yaml(string lastStep = "echo two > /etc/two") =>
        "images:\n" +
        "  base:\n    from: scratch\n    steps:\n" + TinyContext.RootStep +
        "      - run: echo base > /etc/base\n" +
        "  app:\n    from: base\n    steps:\n" +
        "      - run: echo app > /etc/app\n" +
        $"      - run: {lastStep}\n" +
        "    test: spec.yaml\n";

    private static TinyContext Context(string yaml)
    {
        var ctx = new TinyContext(yaml);
        ctx.Write("spec.yaml", Spec);
        return ctx;
    }

    private static (KilnProcess.Result Result, JsonDocument Json) Build(string store, TinyContext ctx, params string[] extra)
    {
        var r = KilnProcess.Run(store, ["build", "--json", "--insecure", .. extra, ctx.Path]);
        Assert.True(r.ExitCode == 0, r.All);
        return (r, JsonDocument.Parse(r.Stdout));
    }

    /// <summary>The layers of <paramref name="store"/> that are extracted (a snapshot dir each, by diff ID hex).</summary>
    private static string[] Snapshots(string store)
    {
        var dir = Path.Combine(store, "kiln", "snapshots");
        return Directory.Exists(dir) ? [.. Directory.GetFileSystemEntries(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal)!] : [];
    }

    private static JsonElement Image(JsonDocument json, string name) =>
        json.RootElement.GetProperty("images").EnumerateArray().First(i => i.GetProperty("name").GetString() == name);

    private static Dictionary<string, string> Digests(JsonDocument json) =>
        json.RootElement.GetProperty("images").EnumerateArray().ToDictionary(i => i.GetProperty("name").GetString()!, i => i.GetProperty("digest").GetString()!);

    private static void AssertAllRemote(JsonDocument json)
    {
        foreach (var image in json.RootElement.GetProperty("images").EnumerateArray())
        {
            Assert.Equal(0, image.GetProperty("stepsRun").GetInt32());
            Assert.All(image.GetProperty("steps").EnumerateArray(), s => Assert.True(s.GetProperty("remote").GetBoolean(), s.ToString()));
        }
        var tests = Image(json, "app").GetProperty("tests").EnumerateArray().ToList();
        Assert.NotEmpty(tests);
        Assert.All(tests, t => Assert.True(t.GetProperty("passed").GetBoolean() && t.GetProperty("cached").GetBoolean() && t.GetProperty("remote").GetBoolean(), t.ToString()));
    }

    [Fact]
    public async Task An_empty_store_builds_from_the_cache_running_nothing_and_the_cache_survives_a_second_hop()
    {
        await using var registry = await RegistryServer.StartAsync();
        using var ctx = Context(Yaml());
        string first = $"{registry.Host}/kiln/cache", second = $"{registry.Host}/kiln/cache2";

        var a = NewStore();
        var cold = Stopwatch.StartNew();
        var (pushed, built) = Build(a, ctx, "--cache-to", first);
        cold.Stop();
        // Off a terminal, each blob the cache sends is one plain line, as kiln push prints them.
        Assert.Matches(@"remote cache: pushed sha256:[0-9a-f]{12} .* in [0-9.]+ s \(", pushed.Stderr);
        var digests = Digests(built);
        Assert.Equal(1, Image(built, "app").GetProperty("tests").GetArrayLength()); // the bake phase
        Assert.True(built.RootElement.GetProperty("remoteCache").GetProperty("entriesPushed").GetInt32() >= 5, built.RootElement.ToString());

        // B: an empty store, reading the first repository and writing the second.
        var b = NewStore();
        var warm = Stopwatch.StartNew();
        var (fetched, fromCache) = Build(b, ctx, "--cache-from", first, "--cache-to", second);
        warm.Stop();
        // Every step was a hit: the layers are fetched for the named images, but nothing reads their files (the test
        // results came from the cache too), so none is extracted until something does.
        Assert.Empty(Snapshots(b));
        Assert.Matches(@"remote cache: fetched sha256:[0-9a-f]{12} .* in [0-9.]+ s \(", fetched.Stderr);
        // The second repository is on the same registry: its layers are mounted from the first, and counted so.
        Assert.True(fromCache.RootElement.GetProperty("remoteCache").GetProperty("blobsMounted").GetInt32() > 0, fromCache.RootElement.ToString());
        output.WriteLine($"cold build with --cache-to: {cold.Elapsed.TotalSeconds:0.00}s; empty store with --cache-from: {warm.Elapsed.TotalSeconds:0.00}s");
        AssertAllRemote(fromCache);
        Assert.Equal(digests, Digests(fromCache));
        foreach (var (name, digest) in digests)
        {
            Assert.Equal(digest, StoreReader.ManifestDigest(b, name));
        }
        var verify = KilnProcess.Run(b, "verify");
        Assert.True(verify.ExitCode == 0, verify.All);
        // B's own step cache now has the steps: without the remote cache, nothing runs either.
        var (_, again) = Build(b, ctx);
        Assert.All(again.RootElement.GetProperty("images").EnumerateArray(), i => Assert.Equal(0, i.GetProperty("stepsRun").GetInt32()));
        Assert.All(again.RootElement.GetProperty("images").EnumerateArray().SelectMany(i => i.GetProperty("steps").EnumerateArray()),
            s => Assert.False(s.GetProperty("remote").GetBoolean()));
        Assert.Empty(Snapshots(b));
        // A step that runs reads the tree beneath it: those layers are extracted then, and the replaced one is not.
        var appLayers = StoreReader.DiffIds(b, "app");
        using (var changed = Context(Yaml("echo changed > /etc/two")))
        {
            var (_, rebuilt) = Build(b, changed);
            Assert.Equal(1, Image(rebuilt, "app").GetProperty("stepsRun").GetInt32());
        }
        Assert.Subset(Snapshots(b).ToHashSet(), appLayers.SkipLast(1).ToHashSet());
        Assert.DoesNotContain(appLayers[^1], Snapshots(b));

        // C: an empty store reading only what B wrote.
        var c = NewStore();
        var (_, hop) = Build(c, ctx, "--cache-from", second);
        AssertAllRemote(hop);
        Assert.Equal(digests, Digests(hop));
    }

    [Fact]
    public void A_cache_that_cannot_be_reached_costs_a_cold_build_and_a_failed_export_exits_1_with_the_images_named()
    {
        // A port where nothing listens: every request is refused at once (and retried, as for any registry).
        string down = $"127.0.0.1:{RegistryServer.FreePort()}";
        string from = $"{down}/kiln/from", to = $"{down}/kiln/to";
        var store = NewStore();
        using var ctx = Context(Yaml());
        var r = KilnProcess.Run(store, ["build", "--json", "--insecure", "--cache-from", from, "--cache-to", to, ctx.Path]);
        Assert.True(r.ExitCode == 1, r.All);
        // One warning for the source, naming it and why, then a normal build: every step ran, the tests passed.
        var warnings = r.Stderr.Split('\n').Where(l => l.StartsWith("warning: ", StringComparison.Ordinal)).ToList();
        Assert.Single(warnings);
        Assert.Contains(from, warnings[0]);
        Assert.Contains("building without it", warnings[0]);
        using var json = JsonDocument.Parse(r.Stdout);
        Assert.All(json.RootElement.GetProperty("images").EnumerateArray(), i => Assert.True(i.GetProperty("stepsRun").GetInt32() > 0));
        Assert.True(json.RootElement.GetProperty("passed").GetBoolean());
        var cache = json.RootElement.GetProperty("remoteCache");
        Assert.Single(cache.GetProperty("unavailable").EnumerateArray());
        Assert.Contains(to, cache.GetProperty("exportError").GetString());
        // The images are named, and the failure of the export is the command's last word.
        Assert.NotNull(StoreReader.ManifestDigest(store, "app"));
        Assert.Contains($"remote cache export to {to} failed", r.Stderr);
    }

    [Fact]
    public async Task A_changed_step_runs_on_fetched_layers_and_the_old_result_is_not_fetched()
    {
        await using var registry = await RegistryServer.StartAsync();
        string repo = $"{registry.Host}/kiln/cache";
        var a = NewStore();
        using (var ctx = Context(Yaml()))
        {
            Build(a, ctx, "--cache-to", repo);
        }
        var oldLayers = StoreReader.LayerDigests(a, "app");

        var d = NewStore();
        using var changed = Context(Yaml("echo three > /etc/three"));
        var (_, json) = Build(d, changed, "--cache-from", repo);
        var app = Image(json, "app");
        Assert.Equal(1, app.GetProperty("stepsRun").GetInt32());
        Assert.Equal(0, Image(json, "base").GetProperty("stepsRun").GetInt32());
        var newLayers = StoreReader.LayerDigests(d, "app");
        Assert.Equal(oldLayers.Take(3), newLayers.Take(3));
        Assert.NotEqual(oldLayers[3], newLayers[3]);
        // The three layers under the changed step were fetched; the old last layer was not.
        Assert.Equal(3, json.RootElement.GetProperty("remoteCache").GetProperty("blobsFetched").GetInt32());
        Assert.False(File.Exists(StoreReader.BlobPath(d, oldLayers[3])), "the replaced step's layer was fetched");
        // Its tests ran (a new image), on the extracted layers.
        Assert.All(app.GetProperty("tests").EnumerateArray(), t => Assert.False(t.GetProperty("cached").GetBoolean()));
        var verify = KilnProcess.Run(d, "verify");
        Assert.True(verify.ExitCode == 0, verify.All);
    }
}
