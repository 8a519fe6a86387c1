using System.Text.Json;

namespace Kiln.Cli.Tests;

/// <summary><c>kiln verify</c> and <c>kiln verify --repair</c> end to end (issue 5).</summary>
public sealed class VerifyRepairTests : IDisposable
{
    private readonly TempDir _store = new("kiln-store");

    public void Dispose() => _store.Dispose();

    private static TinyContext Context() => new(
        "images:\n  tiny:\n    from: scratch\n    steps:\n" + TinyContext.RootStep +
        "      - run: echo one > /one\n      - run: echo two > /two\n");

    private (string Digest, IReadOnlyList<string> Layers) Build(TinyContext ctx, int expectedStepsRun)
    {
        var r = KilnProcess.Run(_store.Path, "build", "--json", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
        Assert.Contains($"\"stepsRun\": {expectedStepsRun}", r.Stdout);
        return (StoreReader.ManifestDigest(_store.Path, "tiny"), StoreReader.LayerDigests(_store.Path, "tiny"));
    }

    [Fact]
    public void A_corrupted_layer_blob_fails_verify_naming_the_image_and_repair_makes_the_next_build_rebuild_it()
    {
        using var ctx = Context();
        var (digest, layers) = Build(ctx, 3);
        var blob = StoreReader.BlobPath(_store.Path, layers[1]);
        var bytes = File.ReadAllBytes(blob);
        bytes[bytes.Length / 2] ^= 0x55;
        File.WriteAllBytes(blob, bytes);

        var verify = KilnProcess.Run(_store.Path, "verify");
        Assert.Equal(1, verify.ExitCode);
        Assert.Contains("CorruptBlob", verify.Stdout);
        Assert.Contains("affects tiny", verify.Stdout);

        var repair = KilnProcess.Run(_store.Path, "verify", "--repair", "--json");
        Assert.True(repair.ExitCode == 1, repair.All); // something was wrong
        using (var json = JsonDocument.Parse(repair.Stdout))
        {
            var repaired = json.RootElement.GetProperty("repaired");
            Assert.Equal(1, repaired.GetProperty("blobsRemoved").GetInt32());
            Assert.True(repaired.GetProperty("stepEntriesRemoved").GetInt32() >= 1);
            Assert.Equal(["tiny"], repaired.GetProperty("rebuild").EnumerateArray().Select(e => e.GetString()));
        }
        Assert.False(File.Exists(blob));

        // The step whose layer was corrupt runs again (and the one after it); the result is the same image.
        var (again, _) = Build(ctx, 2);
        Assert.Equal(digest, again);
        var ok = KilnProcess.Run(_store.Path, "verify");
        Assert.True(ok.ExitCode == 0, ok.All);
        Leftovers.AssertNone(_store.Path);
    }

    [Fact]
    public void A_broken_snapshot_fails_verify_and_repair_drops_it_so_the_next_build_rebuilds_it()
    {
        using var ctx = Context();
        var (digest, _) = Build(ctx, 3);
        var snapshots = Path.Combine(_store.Path, "kiln", "snapshots");
        // The newest snapshot (the last step's) replaced by a file: broken.
        var last = Directory.GetDirectories(snapshots).OrderBy(Directory.GetCreationTimeUtc).Last();
        KilnProcess.Tool("rm", "-rf", last);
        File.WriteAllText(last, "not a snapshot");

        var verify = KilnProcess.Run(_store.Path, "verify");
        Assert.Equal(1, verify.ExitCode);
        Assert.Contains("MissingSnapshot", verify.Stdout);
        Assert.Contains("affects tiny", verify.Stdout);

        var repair = KilnProcess.Run(_store.Path, "verify", "--repair");
        Assert.Equal(1, repair.ExitCode);
        Assert.Contains("1 broken snapshot(s)", repair.Stdout);
        Assert.Contains("build again to restore: tiny", repair.Stdout);
        Assert.False(File.Exists(last));

        var (again, _) = Build(ctx, 1);
        Assert.Equal(digest, again);
        var ok = KilnProcess.Run(_store.Path, "verify");
        Assert.True(ok.ExitCode == 0, ok.All);
    }

    [Fact]
    public void Repair_on_a_healthy_store_changes_nothing_and_exits_0()
    {
        using var ctx = Context();
        Build(ctx, 3);
        var repair = KilnProcess.Run(_store.Path, "verify", "--repair");
        Assert.True(repair.ExitCode == 0, repair.All);
        Assert.Contains("store is consistent", repair.Stdout);
        Build(ctx, 0);
    }
}
