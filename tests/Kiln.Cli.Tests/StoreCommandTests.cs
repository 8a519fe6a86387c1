using System.Text.Json;

namespace Kiln.Cli.Tests;

/// <summary>images, inspect, history, verify and gc on a store holding a tiny image.</summary>
public sealed class StoreCommandTests : IDisposable
{
    private readonly TempDir _store = new("kiln-store");
    private readonly TinyContext _ctx = new(
        "images:\n  tiny:\n    from: scratch\n    steps:\n" + TinyContext.RootStep +
        "      - run: echo one > /one\n      - env: {GREETING: hello}\n" +
        "    config:\n      cmd: [/bin/sh]\n      expose: [8080, 53/udp]\n      labels: {team: web}\n");

    public StoreCommandTests()
    {
        var r = KilnProcess.Run(_store.Path, "build", _ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
    }

    public void Dispose()
    {
        _ctx.Dispose();
        _store.Dispose();
    }

    [Fact]
    public void Images_inspect_and_history_show_the_image_as_json_and_text()
    {
        var images = KilnProcess.Run(_store.Path, "images", "--json");
        Assert.Equal(0, images.ExitCode);
        using var list = JsonDocument.Parse(images.Stdout);
        var tiny = list.RootElement.EnumerateArray().Single();
        Assert.Equal("tiny", tiny.GetProperty("name").GetString());
        Assert.Equal(StoreReader.ManifestDigest(_store.Path, "tiny"), tiny.GetProperty("digest").GetString());
        Assert.Equal(2, tiny.GetProperty("layers").GetInt32());

        var inspect = KilnProcess.Run(_store.Path, "inspect", "tiny", "--json");
        Assert.Equal(0, inspect.ExitCode);
        using var doc = JsonDocument.Parse(inspect.Stdout);
        var config = doc.RootElement.GetProperty("config");
        Assert.Equal(["/bin/sh"], config.GetProperty("cmd").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(["53/udp", "8080/tcp"], config.GetProperty("expose").EnumerateArray().Select(e => e.GetString()));
        Assert.Contains("GREETING=hello", config.GetProperty("env").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("web", config.GetProperty("labels").GetProperty("team").GetString());
        var layers = doc.RootElement.GetProperty("layers").EnumerateArray().ToList();
        Assert.Equal(2, layers.Count);
        Assert.Contains("\"kind\":\"copy\"", layers[0].GetProperty("createdBy").GetString());
        Assert.Contains("echo one", layers[1].GetProperty("createdBy").GetString());
        Assert.True(layers[1].GetProperty("size").GetInt64() > 0);

        var history = KilnProcess.Run(_store.Path, "history", "tiny");
        Assert.Equal(0, history.ExitCode);
        Assert.Contains("GREETING", history.Stdout);
        Assert.Equal(4, history.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length); // header + 3 steps

        var text = KilnProcess.Run(_store.Path, "inspect", "tiny");
        Assert.Contains("Expose:      53/udp 8080/tcp", text.Stdout);
    }

    [Fact]
    public void No_cache_runs_every_step_again_and_gives_the_same_digest()
    {
        var before = StoreReader.ManifestDigest(_store.Path, "tiny");
        var r = KilnProcess.Run(_store.Path, "build", "--no-cache", "--json", _ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
        using var doc = JsonDocument.Parse(r.Stdout);
        var image = doc.RootElement.GetProperty("images")[0];
        Assert.Equal(0, image.GetProperty("stepsCached").GetInt32());
        Assert.Equal(3, image.GetProperty("stepsRun").GetInt32());
        Assert.Equal(before, image.GetProperty("digest").GetString());
    }

    [Fact]
    public void Verify_passes_on_a_good_store_and_names_the_image_a_corrupt_blob_breaks()
    {
        var ok = KilnProcess.Run(_store.Path, "verify");
        Assert.True(ok.ExitCode == 0, ok.All);

        var layer = StoreReader.LayerDigests(_store.Path, "tiny")[1];
        var path = StoreReader.BlobPath(_store.Path, layer);
        var bytes = File.ReadAllBytes(path);
        bytes[bytes.Length / 2] ^= 0xff;
        File.WriteAllBytes(path, bytes);

        var bad = KilnProcess.Run(_store.Path, "verify");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains(layer["sha256:".Length..], bad.Stdout);
        Assert.Contains("tiny", bad.Stdout);
    }

    [Fact]
    public void Gc_keeps_what_images_use_and_removes_what_nothing_references()
    {
        var stray = Path.Combine(_store.Path, "blobs", "sha256", new string('a', 64));
        File.WriteAllText(stray, "nothing references this");
        var r = KilnProcess.Run(_store.Path, "gc");
        Assert.True(r.ExitCode == 0, r.All);
        Assert.StartsWith("removed 1 blob (23 B), 0 snapshots (0 B), 0 step cache entries, 0 test results, 0 kept disks\nkept ", r.Stdout);
        Assert.Contains("; freed 23 B", r.Stdout);
        Assert.False(File.Exists(stray));
        File.WriteAllText(stray, "nothing references this either");
        var json = KilnProcess.Run(_store.Path, "gc", "--json");
        Assert.True(json.ExitCode == 0, json.All);
        using (var doc = System.Text.Json.JsonDocument.Parse(json.Stdout))
        {
            Assert.Equal(1, doc.RootElement.GetProperty("blobsRemoved").GetInt32());
            Assert.Equal(30, doc.RootElement.GetProperty("blobBytesFreed").GetInt64());
            Assert.True(doc.RootElement.GetProperty("blobsKept").GetInt32() > 0);
        }
        Assert.False(File.Exists(stray));
        Assert.All(StoreReader.LayerDigests(_store.Path, "tiny"), d => Assert.True(File.Exists(StoreReader.BlobPath(_store.Path, d))));
        Assert.Equal(0, KilnProcess.Run(_store.Path, "verify").ExitCode);
        var again = KilnProcess.Run(_store.Path, "build", "--json", _ctx.Path);
        Assert.Contains("\"stepsRun\": 0", again.Stdout);
    }

    [Fact]
    public void Every_command_has_help_and_exits_0_with_it()
    {
        foreach (var command in new[] { "build", "images", "inspect", "history", "verify", "gc", "push", "pull", "login", "logout", "run", "shell" })
        {
            var r = KilnProcess.Run(_store.Path, command, "--help");
            Assert.True(r.ExitCode == 0, command + ": " + r.All);
            Assert.StartsWith("Usage: kiln " + command, r.Stdout);
        }
        Assert.Equal(0, KilnProcess.Run(_store.Path, "--help").ExitCode);
        // verify accepts packed layers (pulled, or from remote cache hits): its help must not say snapshots are required.
        var verify = KilnProcess.Run(_store.Path, "verify", "--help").Stdout;
        Assert.Contains("Layers need not be extracted", verify);
        Assert.DoesNotContain("layers and snapshots", verify);
    }
}
