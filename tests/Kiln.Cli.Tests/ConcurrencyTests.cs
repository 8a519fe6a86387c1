using System.Diagnostics;

namespace Kiln.Cli.Tests;

/// <summary>Concurrency (issue 5): several <c>kiln build</c> processes of overlapping definitions on one store while
/// <c>kiln gc</c> runs over and over: every build succeeds with a serial build's digests, nothing referenced is
/// collected, and the store verifies. In <c>./test --fast</c>: it needs no bootstrap, takes seconds, and any change to
/// the store can break what it checks.</summary>
public sealed class ConcurrencyTests : IDisposable
{
    private readonly TempDir _store = new("kiln-conc-store");
    private readonly TempDir _serial = new("kiln-conc-serial");

    public void Dispose()
    {
        _store.Dispose();
        _serial.Dispose();
    }

    /// <summary>Four definitions sharing their first steps (same cache keys) and differing after.</summary>
    private static TinyContext Context(int i)
    {
        string shared = "      - copy: big.bin\n        to: /data/\n      - run: echo shared > /shared\n";
        string own = i % 2 == 0 ? "      - run: echo even > /parity\n" : "      - run: echo odd > /parity\n";
        var ctx = new TinyContext(
            $"images:\n  base{i % 2}:\n    from: scratch\n    steps:\n{TinyContext.RootStep}{shared}{own}" +
            $"  app{i}:\n    from: base{i % 2}\n    steps:\n      - run: echo {i} > /app && rm /shared\n");
        var big = new byte[3 << 20];
        new Random(7).NextBytes(big);
        File.WriteAllBytes(Path.Combine(ctx.Path, "big.bin"), big);
        return ctx;
    }

    [Fact]
    public async Task Four_concurrent_builds_with_gc_running_all_succeed_with_a_serial_builds_digests()
    {
        var contexts = Enumerable.Range(0, 4).Select(Context).ToList();
        try
        {
            var expected = new Dictionary<string, string>();
            foreach (var (ctx, i) in contexts.Select((c, i) => (c, i)))
            {
                var r = KilnProcess.Run(_serial.Path, "build", ctx.Path);
                Assert.True(r.ExitCode == 0, r.All);
                expected[$"app{i}"] = StoreReader.ManifestDigest(_serial.Path, $"app{i}");
                expected[$"base{i % 2}"] = StoreReader.ManifestDigest(_serial.Path, $"base{i % 2}");
            }

            for (int round = 0; round < 2; round++)
            {
                // Round 0 on an empty store, round 1 with --no-cache over the first round's results.
                using var stop = new CancellationTokenSource();
                int gcRuns = 0;
                var gcFailures = new List<string>();
                var gc = Task.Run(() =>
                {
                    while (!stop.IsCancellationRequested)
                    {
                        var r = KilnProcess.RunProcess(_store.Path, "gc", gcRuns % 2 == 0 ? "--prune-cache" : "--json");
                        if (r.ExitCode != 0)
                        {
                            gcFailures.Add(r.All);
                        }
                        gcRuns++;
                    }
                });
                var builds = contexts.Select(ctx => Task.Run(() => round == 0
                    ? KilnProcess.RunProcess(_store.Path, "build", ctx.Path)
                    : KilnProcess.RunProcess(_store.Path, "build", "--no-cache", ctx.Path))).ToArray();
                var results = await Task.WhenAll(builds);
                await stop.CancelAsync();
                await gc;
                foreach (var b in results)
                {
                    Assert.True(b.ExitCode == 0, b.All);
                }
                Assert.Empty(gcFailures);
                Assert.True(gcRuns > 0);
                foreach (var (name, digest) in expected)
                {
                    Assert.Equal(digest, StoreReader.ManifestDigest(_store.Path, name));
                }
                var verify = KilnProcess.Run(_store.Path, "verify");
                Assert.True(verify.ExitCode == 0, verify.All);
            }

            // A last gc with nothing running removes nothing any image needs.
            Assert.Equal(0, KilnProcess.Run(_store.Path, "gc", "--prune-cache").ExitCode);
            var after = KilnProcess.Run(_store.Path, "verify");
            Assert.True(after.ExitCode == 0, after.All);
            var again = KilnProcess.Run(_store.Path, "build", "--json", contexts[3].Path);
            Assert.True(again.ExitCode == 0, again.All);
            Assert.Contains("\"stepsRun\": 0", again.Stdout);
            Leftovers.AssertNone(_store.Path);
        }
        finally
        {
            foreach (var c in contexts)
            {
                c.Dispose();
            }
        }
    }
}
