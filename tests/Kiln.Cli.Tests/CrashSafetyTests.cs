using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Xunit.Abstractions;

namespace Kiln.Cli.Tests;

/// <summary>Crash safety (issue 5): <c>kiln build</c> SIGKILLed at random instants, many times, on one store; after
/// each kill the store verifies, the next start cleans what the dead build left, index.json parses, no mount or
/// process survives; at the end a build gives the digests of an uninterrupted one. About a minute: not in
/// <c>./test --fast</c>, where it would take half the edit loop's budget (its 50 kills find a rare window, not a
/// common one).</summary>
[Trait("Tier", "Slow")]
public sealed class CrashSafetyTests(ITestOutputHelper output) : IDisposable
{
    private const int Runs = 50;
    private readonly TempDir _store = new("kiln-crash-store");
    private readonly TempDir _reference = new("kiln-crash-ref");

    public void Dispose()
    {
        _store.Dispose();
        _reference.Dispose();
    }

    /// <summary>Several steps, one of them a 6 MB layer (deterministic bytes) so that there is I/O to interrupt.</summary>
    internal static TinyContext Context()
    {
        var ctx = new TinyContext(
            "images:\n  crash:\n    from: scratch\n    steps:\n" + TinyContext.RootStep +
            "      - copy: big.bin\n        to: /data/\n" +
            "      - run: head -c 100000 /data/big.bin > /data/head && echo one > /one\n" +
            "      - env: {STAGE: two}\n" +
            "      - run: rm /one && mkdir -p /var/app && echo $STAGE > /var/app/stage\n" +
            "  child:\n    from: crash\n    steps:\n      - run: cat /var/app/stage > /child\n");
        var big = new byte[6 << 20];
        new Random(42).NextBytes(big);
        File.WriteAllBytes(Path.Combine(ctx.Path, "big.bin"), big);
        return ctx;
    }

    private static Dictionary<string, string> Digests(string store) =>
        new() { ["crash"] = StoreReader.ManifestDigest(store, "crash"), ["child"] = StoreReader.ManifestDigest(store, "child") };

    [Fact]
    public void Fifty_builds_killed_with_sigkill_at_random_instants_leave_a_store_that_verifies_and_then_builds_the_same_digests()
    {
        using var ctx = Context();
        var clock = Stopwatch.StartNew();
        var reference = KilnProcess.Run(_reference.Path, "build", ctx.Path);
        Assert.True(reference.ExitCode == 0, reference.All);
        var fullBuild = clock.Elapsed;
        var expected = Digests(_reference.Path);

        int seed = Environment.TickCount;
        var random = new Random(seed);
        var failures = new List<string>();
        int killed = 0, finished = 0, leftoversSeen = 0;
        for (int run = 0; run < Runs; run++)
        {
            if (run % 10 == 0 && Directory.Exists(_store.Path))
            {
                KilnProcess.Tool("rm", "-rf", "--one-file-system", _store.Path); // start over now and then: first builds write the most
            }
            // Mostly --no-cache (every step runs, writes and commits again); now and then a cached build.
            var args = run % 5 == 4 ? new[] { "build", ctx.Path } : new[] { "build", "--no-cache", ctx.Path };
            var delay = TimeSpan.FromMilliseconds(random.NextDouble() * 0.9 * fullBuild.TotalMilliseconds);
            using (var p = Start(KilnProcess.StartInfo(_store.Path, args)))
            {
                if (p.WaitForExit(delay))
                {
                    finished++;
                    if (p.ExitCode != 0)
                    {
                        failures.Add($"run {run}: uninterrupted build exited {p.ExitCode}");
                    }
                }
                else
                {
                    p.Kill(); // SIGKILL
                    p.WaitForExit();
                    killed++;
                }
            }
            if (Leftovers.Find(_store.Path).Any(l => l.StartsWith("left in store", StringComparison.Ordinal)))
            {
                leftoversSeen++;
            }
            CheckAfterKill(run, failures);
        }

        var final = KilnProcess.Run(_store.Path, "build", ctx.Path);
        if (final.ExitCode != 0)
        {
            failures.Add("final build: " + final.All);
        }
        else
        {
            var got = Digests(_store.Path);
            if (got["crash"] != expected["crash"] || got["child"] != expected["child"])
            {
                failures.Add($"final digests {got["crash"]}, {got["child"]} differ from an uninterrupted build's {expected["crash"]}, {expected["child"]}");
            }
        }
        CheckAfterKill(Runs, failures);
        output.WriteLine($"seed {seed}: {Runs} runs ({killed} killed, {finished} finished before the kill), " +
            $"{leftoversSeen} left ingest/tmp entries that the next start removed, {failures.Count} failures, {clock.Elapsed.TotalSeconds:F0} s");
        Assert.True(failures.Count == 0, $"seed {seed}: " + string.Join('\n', failures));
    }

    private void CheckAfterKill(int run, List<string> failures)
    {
        var index = Path.Combine(_store.Path, "index.json");
        if (File.Exists(index))
        {
            try
            {
                using var _ = JsonDocument.Parse(File.ReadAllBytes(index));
            }
            catch (JsonException e)
            {
                failures.Add($"run {run}: index.json does not parse: {e.Message}");
            }
        }
        // verify opens the store, which is the "next start" that must clean what the dead build left.
        var verify = KilnProcess.Run(_store.Path, "verify");
        if (verify.ExitCode != 0)
        {
            failures.Add($"run {run}: verify exited {verify.ExitCode}: {verify.All}");
        }
        bool storeExists = File.Exists(Path.Combine(_store.Path, "oci-layout"));
        IReadOnlyList<string> left = [];
        for (int i = 0; i < 50; i++)
        {
            left = Leftovers.Find(_store.Path).Where(l => storeExists || !l.StartsWith("left in store", StringComparison.Ordinal)).ToList();
            if (left.Count == 0)
            {
                break;
            }
            Thread.Sleep(100);
        }
        if (left.Count > 0)
        {
            failures.Add($"run {run}: left behind after the next start: {string.Join("; ", left)}");
        }
    }

    /// <summary>Starts a kiln process whose output is read and dropped.</summary>
    internal static Process Start(ProcessStartInfo psi)
    {
        var p = new Process { StartInfo = psi };
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.Start();
        p.StandardInput.Close();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }
}
