using System.Text.Json;

namespace Kiln.Cli.Tests;

/// <summary><c>kiln promote</c> and <c>kiln promotions</c> on a tiny image: the channel gate against the current spec,
/// approval, and the log.</summary>
public sealed class PromotionTests : IDisposable
{
    private readonly TempDir _store = new("kiln-store");

    public void Dispose() => _store.Dispose();

    private static string Yaml(string spec) => $$"""
        channels:
          staging: [bake]
          production: {require: [bake, boot], approve: true}
          gated: {require: [bake], approve: true}
        images:
          tiny:
            from: scratch
            steps:
        {{TinyContext.RootStep}}      - run: echo hello > /etc/greeting
            test:
              file: {{spec}}

        """;

    private KilnProcess.Result Kiln(params string[] args) => KilnProcess.Run(_store.Path, args);

    [Fact]
    public void A_rebuild_answered_from_the_result_cache_leaves_one_test_results_referrer()
    {
        using var ctx = new TinyContext(Yaml("{/etc/greeting: {contains: hello}}"));
        for (int i = 0; i < 3; i++)
        {
            var build = Kiln("build", ctx.Path);
            Assert.True(build.ExitCode == 0, build.All);
        }
        var inspect = Kiln("inspect", "tiny", "--json");
        Assert.True(inspect.ExitCode == 0, inspect.All);
        using var doc = JsonDocument.Parse(inspect.Stdout);
        var types = doc.RootElement.GetProperty("referrers").EnumerateArray().Select(r => r.GetProperty("artifactType").GetString()).ToList();
        Assert.Single(types, t => t == "application/vnd.kiln.test-results.v1+json");
    }

    [Fact]
    [Trait("Tier", "Slow")]
    public void Promotion_needs_passing_results_for_the_channels_phases_and_approval_and_is_logged()
    {
        using var ctx = new TinyContext(Yaml("{/etc/greeting: {contains: hello}}"));
        var early = Kiln("promote", "tiny", "staging", "-f", ctx.Path);
        Assert.True(early.ExitCode == 2, early.All);
        Assert.Contains("no store at", early.Stderr, StringComparison.Ordinal);

        var build = Kiln("build", "--json", ctx.Path);
        Assert.True(build.ExitCode == 0, build.All);
        string digest;
        using (var doc = JsonDocument.Parse(build.Stdout))
        {
            digest = doc.RootElement.GetProperty("images")[0].GetProperty("digest").GetString()!;
        }

        var staging = Kiln("promote", "tiny", "staging", "-f", ctx.Path);
        Assert.True(staging.ExitCode == 0, staging.All);
        Assert.Contains($"promoted tiny ({digest}) to staging", staging.Stdout, StringComparison.Ordinal);

        var production = Kiln("promote", "tiny", "production", "-f", ctx.Path);
        Assert.True(production.ExitCode == 1, production.All);
        Assert.Contains("no boot result for " + digest, production.Stderr, StringComparison.Ordinal);
        Assert.Contains("channel 'production' needs approval", production.Stderr, StringComparison.Ordinal);

        var unapproved = Kiln("promote", "tiny", "gated", "-f", ctx.Path);
        Assert.True(unapproved.ExitCode == 1, unapproved.All);
        Assert.Contains("needs approval: promote with --approve", unapproved.Stderr, StringComparison.Ordinal);
        var approved = Kiln("promote", "tiny", "gated", "--approve", "--json", "-f", ctx.Path);
        Assert.True(approved.ExitCode == 0, approved.All);
        using (var doc = JsonDocument.Parse(approved.Stdout))
        {
            Assert.True(doc.RootElement.GetProperty("approved").GetBoolean());
            Assert.Equal("bake", doc.RootElement.GetProperty("results")[0].GetProperty("phase").GetString());
        }

        var unknown = Kiln("promote", "tiny", "prod", "-f", ctx.Path);
        Assert.True(unknown.ExitCode == 2, unknown.All);
        Assert.Contains("has no channel 'prod'; its channels: staging, production, gated", unknown.Stderr, StringComparison.Ordinal);

        // The spec changed and the image was not tested against it: its old result no longer counts.
        ctx.Write("kiln.yaml", Yaml("{/etc/greeting: {contains: hello}, /bin/sh: {exists: true}}"));
        var stale = Kiln("promote", "tiny", "staging", "-f", ctx.Path);
        Assert.True(stale.ExitCode == 1, stale.All);
        Assert.Contains("no bake result for " + digest + " against the current spec", stale.Stderr, StringComparison.Ordinal);

        // A promotion torn by a crash is not listed, and the next one repairs the log.
        File.AppendAllText(Path.Combine(_store.Path, "kiln", "promotions.jsonl"), "{\"digest\":\"sha256:0");
        var log = Kiln("promotions", "tiny", "--json");
        Assert.True(log.ExitCode == 0, log.All);
        using (var doc = JsonDocument.Parse(log.Stdout))
        {
            var records = doc.RootElement.EnumerateArray().ToList();
            Assert.Equal(["staging", "gated"], records.Select(r => r.GetProperty("channel").GetString()));
            Assert.All(records, r => Assert.Equal(digest, r.GetProperty("digest").GetString()));
            Assert.All(records, r => Assert.False(string.IsNullOrEmpty(r.GetProperty("who").GetString())));
        }
        var retested = Kiln("test", "tiny", "-f", ctx.Path);
        Assert.True(retested.ExitCode == 0, retested.All);
        var again = Kiln("promote", "tiny", "staging", "--json", "-f", ctx.Path);
        Assert.True(again.ExitCode == 0, again.All);

        // kiln test refreshed the test-results referrer as a build does: the result the promotion rests on is in the
        // referrer made for the new spec.
        using (var doc = JsonDocument.Parse(again.Stdout))
        {
            var bake = doc.RootElement.GetProperty("results")[0];
            Assert.Equal("bake", bake.GetProperty("phase").GetString());
            var result = bake.GetProperty("result").GetString()!;
            var spec = bake.GetProperty("spec").GetString()!;
            var inspect = Kiln("inspect", "tiny", "--json");
            using var referrers = JsonDocument.Parse(inspect.Stdout);
            var forSpec = new List<List<string?>>();
            foreach (var r in referrers.RootElement.GetProperty("referrers").EnumerateArray()
                .Where(r => r.GetProperty("artifactType").GetString() == "application/vnd.kiln.test-results.v1+json"))
            {
                using var m = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(_store.Path, "blobs", "sha256", r.GetProperty("digest").GetString()!["sha256:".Length..])));
                if (m.RootElement.GetProperty("annotations").GetProperty("io.kiln.spec").GetString() == spec)
                {
                    forSpec.Add([.. m.RootElement.GetProperty("layers").EnumerateArray().Select(l => l.GetProperty("digest").GetString())]);
                }
            }
            Assert.Contains(result, Assert.Single(forSpec));
        }
        var text = Kiln("promotions");
        Assert.True(text.ExitCode == 0, text.All);
        var lines = text.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(4, lines.Length);
        Assert.Contains("gated", lines[2], StringComparison.Ordinal);
        Assert.Contains("bake+approved", lines[2], StringComparison.Ordinal);
        Assert.EndsWith("-", lines[3].TrimEnd(), StringComparison.Ordinal);
    }
}
