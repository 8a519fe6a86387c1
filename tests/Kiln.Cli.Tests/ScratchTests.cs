using System.Text.Json;

namespace Kiln.Cli.Tests;

/// <summary>Where run steps write: a tmpfs by default (the snapshot copied to the store's disk while the layer is
/// packed), the store's disk with --scratch-on-disk, and the disk again when the tmpfs fills up.</summary>
public sealed class ScratchTests : IDisposable
{
    private readonly TempDir _store = new("kiln-store");

    public void Dispose() => _store.Dispose();

    private const string Steps =
        "      - run: mkdir -p /srv/data && echo hello > /srv/data/greeting && ln /srv/data/greeting /srv/data/hardlink && ln -s greeting /srv/data/link && chmod 4755 /srv/data/greeting\n";

    private static string Yaml(string steps) => $"images:\n  tiny:\n    from: scratch\n    steps:\n{TinyContext.RootStep}{steps}";

    private static IReadOnlyList<string> PhasesOfStep(string trace, string step)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(trace));
        return [.. doc.RootElement.GetProperty("traceEvents").EnumerateArray()
            .Where(e => e.GetProperty("ph").GetString() == "X" && e.GetProperty("cat").GetString() == "phase"
                && e.GetProperty("args").TryGetProperty("step", out var s) && s.GetString() == step)
            .Select(e => e.GetProperty("name").GetString()!)];
    }

    [Fact]
    public void A_run_step_on_a_tmpfs_gives_the_same_image_and_snapshot_as_on_disk()
    {
        using var ctx = new TinyContext(Yaml(Steps));
        var trace = Path.Combine(ctx.Path, "trace.json");
        var memory = KilnProcess.Run(_store.Path, "build", "--trace", trace, ctx.Path);
        Assert.True(memory.ExitCode == 0, memory.All);
        Assert.Contains("copy snapshot", PhasesOfStep(trace, "1"));
        var digest = StoreReader.ManifestDigest(_store.Path, "tiny");
        var tree = TreeListing.OfImage(_store.Path, "tiny");
        Assert.Contains(tree, l => l.StartsWith("srv/data/greeting\tf\t4755\t", StringComparison.Ordinal));
        Leftovers.AssertNone(_store.Path);

        using var disk = new TempDir("kiln-store");
        var onDisk = KilnProcess.Run(disk.Path, "build", "--scratch-on-disk", "--trace", trace, ctx.Path);
        Assert.True(onDisk.ExitCode == 0, onDisk.All);
        Assert.DoesNotContain("copy snapshot", PhasesOfStep(trace, "1"));
        Assert.Contains("commit snapshot", PhasesOfStep(trace, "1"));

        Assert.Equal(digest, StoreReader.ManifestDigest(disk.Path, "tiny"));
        Assert.Equal(tree, TreeListing.OfImage(disk.Path, "tiny"));
        Leftovers.AssertNone(disk.Path);
    }

    [Fact]
    public void A_step_that_fills_its_tmpfs_runs_again_on_disk_and_says_so()
    {
        // busybox's head does not check its writes: cut short by the full tmpfs, it still succeeds.
        using var ctx = new TinyContext(Yaml("      - run: head -c 3000000 /dev/zero > /big && echo wrote\n"));
        var psi = KilnProcess.StartInfo(_store.Path, "build", ctx.Path);
        psi.Environment["KILN_SCRATCH_SIZE"] = "1m";
        var r = KilnProcess.Run(psi, TimeSpan.FromMinutes(5));

        Assert.True(r.ExitCode == 0, r.All);
        Assert.Contains("warning: step 2 (run head -c 3000000 /dev/zero > /big && echo wrote) filled its 1 MiB of memory scratch space; running it again on disk", r.Stdout);
        Assert.Contains(TreeListing.OfImage(_store.Path, "tiny"), l => l.StartsWith("big\tf\t", StringComparison.Ordinal));
        Assert.Equal(3000000, new FileInfo(Path.Combine(_store.Path, "kiln", "snapshots",
            JsonDocument.Parse(File.ReadAllText(StoreReader.BlobPath(_store.Path, ConfigDigest()))).RootElement
                .GetProperty("rootfs").GetProperty("diff_ids")[1].GetString()!["sha256:".Length..], "big")).Length);
        Leftovers.AssertNone(_store.Path);
    }

    [Fact]
    public void A_step_that_fails_on_its_own_is_not_run_again()
    {
        using var ctx = new TinyContext(Yaml("      - run: echo ran-$((40 + 2)); exit 4\n"));
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);

        Assert.Equal(1, r.ExitCode);
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(r.All, "ran-42"));
        Assert.DoesNotContain("running it again on disk", r.All);
        Leftovers.AssertNone(_store.Path);
    }

    /// <summary>The kinds of memory temp dirs ("step", "test", "instance") mounted for the store while kiln ran.</summary>
    private HashSet<string> TmpfsSeenDuring(params string[] args)
    {
        var seen = new HashSet<string>();
        var prefix = Path.Combine(_store.Path, "kiln", "scratch") + "/";
        var psi = KilnProcess.StartInfo(_store.Path, args);
        using var p = System.Diagnostics.Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEndAsync();
        var errors = p.StandardError.ReadToEndAsync();
        while (!p.HasExited)
        {
            foreach (var line in File.ReadLines("/proc/self/mountinfo"))
            {
                var fields = line.Split(' ');
                var dash = Array.IndexOf(fields, "-");
                if (fields[4].StartsWith(prefix, StringComparison.Ordinal) && fields[dash + 1] == "tmpfs" && fields[dash + 2] == "kiln-scratch")
                {
                    seen.Add(fields[4][prefix.Length..].Split('-')[1]);
                }
            }
            Thread.Sleep(10);
        }
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, output.Result + errors.Result);
        return seen;
    }

    [Fact]
    public void Bake_commands_and_test_instances_write_to_a_tmpfs_too_and_none_is_used_with_scratch_on_disk()
    {
        using var ctx = new TinyContext("images:\n  tiny:\n    from: scratch\n    steps:\n" + TinyContext.RootStep +
            "      - run: echo built > /built\n" +
            "    config:\n      cmd: [/bin/sh, -c, \"sleep 30\"]\n" +
            "    test:\n      command:\n" +
            "        \"sleep 1; cat /built\": {stdout: built}\n" +
            "        \"sleep 1; echo booted\": {phase: boot, stdout: booted}\n");

        Assert.Equal(["instance", "step", "test"], TmpfsSeenDuring("build", ctx.Path).Order(StringComparer.Ordinal));
        Leftovers.AssertNone(_store.Path);

        Assert.Empty(TmpfsSeenDuring("test", "tiny", "-f", ctx.Path, "--scratch-on-disk"));
        Assert.Equal(["instance", "test"], TmpfsSeenDuring("test", "tiny", "-f", ctx.Path).Order(StringComparer.Ordinal));
        Assert.Empty(TmpfsSeenDuring("build", "--no-cache", "--scratch-on-disk", ctx.Path));
        Leftovers.AssertNone(_store.Path);
    }

    [Fact]
    public void A_bad_scratch_size_is_a_usage_error()
    {
        using var ctx = new TinyContext(Yaml(Steps));
        var psi = KilnProcess.StartInfo(_store.Path, "build", ctx.Path);
        psi.Environment["KILN_SCRATCH_SIZE"] = "lots";
        var r = KilnProcess.Run(psi, TimeSpan.FromMinutes(1));

        Assert.Equal(2, r.ExitCode);
        Assert.Contains("KILN_SCRATCH_SIZE", r.Stderr);
        Assert.Contains("'lots'", r.Stderr);
    }

    private string ConfigDigest()
    {
        using var manifest = JsonDocument.Parse(File.ReadAllText(StoreReader.BlobPath(_store.Path, StoreReader.ManifestDigest(_store.Path, "tiny"))));
        return manifest.RootElement.GetProperty("config").GetProperty("digest").GetString()!;
    }
}
