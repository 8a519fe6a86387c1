using System.Diagnostics;

namespace Kiln.Cli.Tests;

/// <summary>End-to-end builds of tiny busybox images through the kiln command.</summary>
public sealed class TinyImageTests : IDisposable
{
    private readonly TempDir _store = new("kiln-store");

    public void Dispose() => _store.Dispose();

    private static string Image(string steps, string name = "tiny") =>
        $"images:\n  {name}:\n    from: scratch\n    steps:\n{TinyContext.RootStep}{steps}";

    [Fact]
    public void A_file_deleted_in_a_later_step_is_a_whiteout_and_absent_after_unpacking()
    {
        using var ctx = new TinyContext(Image(
            "      - run: echo hello > /etc/greeting && echo bye > /etc/old\n" +
            "      - run: rm /etc/old\n"));
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);

        var layers = StoreReader.LayerDigests(_store.Path, "tiny");
        Assert.Equal(3, layers.Count);
        Assert.Contains("etc/greeting", StoreReader.LayerEntries(_store.Path, layers[1]));
        Assert.Contains("etc/.wh.old", StoreReader.LayerEntries(_store.Path, layers[2]));

        using var bundle = new TempDir("kiln-umoci");
        var u = KilnProcess.Tool("umoci", "unpack", "--image", _store.Path + ":tiny", bundle.Sub("b"));
        Assert.True(u.ExitCode == 0, u.All);
        Assert.Equal("hello\n", File.ReadAllText(bundle.Sub("b/rootfs/etc/greeting")));
        Assert.False(File.Exists(bundle.Sub("b/rootfs/etc/old")));
        Leftovers.AssertNone(_store.Path);
    }

    [Fact]
    public void A_step_after_user_runs_as_that_user_with_its_groups_from_the_image()
    {
        using var ctx = new TinyContext(Image(
            "      - run: mkdir /data && chown 1000:1000 /data\n" +
            "      - user: app\n" +
            "      - run: (id -u; id -g; id -G; echo $PWD; touch /etc/x 2>/dev/null || echo denied) > /data/who\n"));
        ctx.Write("rootfs/etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/tmp:/bin/sh\n");
        ctx.Write("rootfs/etc/group", "root:x:0:\napp:x:1000:\nextra:x:1001:app\n");
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
        using var bundle = new TempDir("kiln-umoci");
        var u = KilnProcess.Tool("umoci", "unpack", "--image", _store.Path + ":tiny", bundle.Sub("b"));
        Assert.True(u.ExitCode == 0, u.All);
        Assert.Equal("1000\n1000\n1000 1001\n/\ndenied\n", File.ReadAllText(bundle.Sub("b/rootfs/data/who")));
    }

    [Fact]
    public void A_failing_step_exits_1_shows_its_output_and_leaves_nothing_behind()
    {
        using var ctx = new TinyContext(Image("      - run: echo about to fail; mkdir /made-by-failed-step; exit 3\n"));
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("exit status 3", r.Stderr);
        Assert.Contains("about to fail", r.Stderr);
        Leftovers.AssertNone(_store.Path);
        Assert.DoesNotContain("\"tiny\"", File.ReadAllText(Path.Combine(_store.Path, "index.json")));
    }

    [Fact]
    public void Interrupting_a_build_exits_130_and_leaves_nothing_behind()
    {
        using var ctx = new TinyContext(Image("      - run: echo sleeping; sleep 300\n"));
        var psi = KilnProcess.StartInfo(_store.Path, "build", "--verbose", ctx.Path);
        // A test run started in the background of a shell has SIGINT ignored, and an ignored signal stays ignored across
        // exec (the runtime then leaves it so): kiln starts with SIGINT at its default, as from a terminal.
        psi.ArgumentList.Insert(0, psi.FileName);
        psi.ArgumentList.Insert(0, "--default-signal=INT");
        psi.FileName = "env";
        using var p = StartUntil(psi, "sleeping");
        Assert.Equal(0, KilnProcess.Tool("kill", "-INT", p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)).ExitCode);
        Assert.True(p.WaitForExit(TimeSpan.FromSeconds(30)), "kiln did not stop after SIGINT");
        Assert.Equal(130, p.ExitCode);
        Leftovers.AssertNone(_store.Path);
    }

    [Fact]
    public void While_a_step_runs_every_thread_of_kiln_is_in_kilns_own_namespaces_and_directory()
    {
        // The thread that starts a sandbox enters its namespaces to set it up; threads made from it meanwhile (the
        // thread pool grows from the thread that queues work) would stay there and run kiln's work in the sandbox.
        using var ctx = new TinyContext(Image("      - run: echo up; sleep 300\n"));
        using var p = StartUntil(KilnProcess.StartInfo(_store.Path, "build", "--verbose", ctx.Path), "| up");
        try
        {
            Thread.Sleep(200); // the output's readers and whatever they queue are running by now
            string State(string task) => string.Join(' ', new[] { "ns/mnt", "ns/net", "ns/uts", "ns/ipc", "ns/pid_for_children", "cwd" }
                .Select(f => new FileInfo($"/proc/{p.Id}/task/{task}/{f}").LinkTarget));
            var main = State(p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
            var threads = Directory.GetDirectories($"/proc/{p.Id}/task").Select(Path.GetFileName).ToList();
            Assert.True(threads.Count > 3, string.Join(' ', threads));
            foreach (var t in threads)
            {
                Assert.Equal(main, State(t!));
            }
        }
        finally
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
        }
        // The killed build's scratch tmpfs is cleaned by the next start on the store (as after a crash).
        var verify = KilnProcess.Run(_store.Path, "verify");
        Assert.True(verify.ExitCode == 0, verify.All);
        Leftovers.AssertNone(_store.Path);
    }

    [Theory]
    [InlineData("")]
    [InlineData("      - user: app\n")]
    public void Killing_kiln_alone_ends_every_process_of_its_sandbox_a_users_too(string user)
    {
        // The sandbox's PID 1 dies with the thread of kiln that started it (its parent-death signal), and with PID 1 the
        // whole namespace: nothing a step started keeps running once kiln is gone, not even a process of another user.
        using var ctx = new TinyContext(Image(user + "      - run: sleep 300 & sleep 301 & echo started; wait\n"));
        ctx.Write("rootfs/etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/tmp:/bin/sh\n");
        ctx.Write("rootfs/etc/group", "root:x:0:\napp:x:1000:\n");
        var p = StartUntil(KilnProcess.StartInfo(_store.Path, "build", "--verbose", ctx.Path), "| started");
        List<int> inSandbox;
        try
        {
            // The step's processes: those whose root is a directory of this store (their sandbox's merged root).
            inSandbox = ProcessTable.Pids().Where(pid => ProcessTable.Link(pid, "root")?.StartsWith(_store.Path + "/", StringComparison.Ordinal) == true).ToList();
            Assert.True(inSandbox.Count >= 3, $"expected the shell and two sleeps in the sandbox, found {inSandbox.Count}");
            if (user.Length > 0)
            {
                Assert.Contains(inSandbox, pid => File.ReadAllText($"/proc/{pid}/status").Contains("Uid:\t1000", StringComparison.Ordinal));
            }
            p.Kill(); // SIGKILL to kiln alone, not its process tree
            Assert.True(p.WaitForExit(TimeSpan.FromSeconds(30)), "kiln did not die");
        }
        finally
        {
            p.Kill(entireProcessTree: true);
            p.Dispose();
        }
        var until = DateTime.UtcNow.AddSeconds(10);
        while (inSandbox.Any(ProcessTable.Alive) && DateTime.UtcNow < until)
        {
            Thread.Sleep(10);
        }
        Assert.True(!inSandbox.Any(ProcessTable.Alive), "outlived kiln: " + string.Join(", ", inSandbox.Where(ProcessTable.Alive)));
        var verify = KilnProcess.Run(_store.Path, "verify");
        Assert.True(verify.ExitCode == 0, verify.All);
        Leftovers.AssertNone(_store.Path);
    }

    /// <summary>Starts kiln and returns once a line of its output holds <paramref name="marker"/> (a step's output, with
    /// --verbose); kills it if that does not come within a minute.</summary>
    private static Process StartUntil(ProcessStartInfo psi, string marker)
    {
        var p = new Process { StartInfo = psi };
        var seen = new ManualResetEventSlim();
        p.OutputDataReceived += (_, e) =>
        {
            if (e.Data?.Contains(marker, StringComparison.Ordinal) == true)
            {
                seen.Set();
            }
        };
        p.ErrorDataReceived += (_, _) => { };
        p.Start();
        p.StandardInput.Close();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        if (!seen.Wait(TimeSpan.FromSeconds(60)))
        {
            p.Kill(entireProcessTree: true);
            p.Dispose();
            Assert.Fail($"the step did not start (no output line with '{marker}' within 60 s)");
        }
        return p;
    }

    [Fact]
    public void A_step_with_network_none_sees_only_loopback()
    {
        using var ctx = new TinyContext(Image(
            "      - run: test \"$(ls /sys/class/net)\" = lo && ip=$(cat /proc/net/dev | grep -c :) && test $ip = 1\n        network: none\n"));
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
    }

    [Fact]
    public void A_step_sees_no_file_descriptor_beyond_stderr_and_runs_as_pid_1_of_its_namespace()
    {
        // ls opens the directory it lists, so it sees 0, 1, 2 and its own descriptor 3.
        using var ctx = new TinyContext(Image(
            "      - run: test \"$(ls /proc/self/fd | tr '\\n' ' ')\" = '0 1 2 3 ' && test \"$(cat /proc/1/comm)\" = sh\n"));
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
    }

    [Fact]
    public void Services_are_kept_from_starting_and_the_sandbox_files_stay_out_of_the_layer()
    {
        using var ctx = new TinyContext(Image(
            "      - run: /usr/sbin/policy-rc.d; test $? = 101 && test -s /etc/resolv.conf && touch /etc/made\n"));
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
        var layers = StoreReader.LayerDigests(_store.Path, "tiny");
        var entries = StoreReader.LayerEntries(_store.Path, layers[^1]);
        Assert.Contains("etc/made", entries);
        Assert.DoesNotContain(entries, e => e.Contains("policy-rc.d", StringComparison.Ordinal) || e.Contains("resolv.conf", StringComparison.Ordinal)
            || e.StartsWith("proc/", StringComparison.Ordinal) || e.StartsWith("dev/", StringComparison.Ordinal));
    }

    [Fact]
    public void A_second_build_runs_no_step_and_a_changed_file_reruns_only_its_copy_and_later_steps()
    {
        using var ctx = new TinyContext(Image(
            "      - run: echo one > /one\n" +
            "      - copy: app.txt\n        to: /app/\n" +
            "      - run: cat /app/app.txt > /app/copy.txt\n"));
        ctx.Write("app.txt", "v1\n");
        var first = KilnProcess.Run(_store.Path, "build", "--json", ctx.Path);
        Assert.True(first.ExitCode == 0, first.All);
        var digest1 = StoreReader.ManifestDigest(_store.Path, "tiny");

        var second = KilnProcess.Run(_store.Path, "build", "--json", ctx.Path);
        Assert.True(second.ExitCode == 0, second.All);
        Assert.Contains("\"stepsRun\": 0", second.Stdout);
        Assert.Equal(digest1, StoreReader.ManifestDigest(_store.Path, "tiny"));

        ctx.Write("app.txt", "v2\n");
        var third = KilnProcess.Run(_store.Path, "build", "--json", ctx.Path);
        Assert.True(third.ExitCode == 0, third.All);
        using var json = System.Text.Json.JsonDocument.Parse(third.Stdout);
        var steps = json.RootElement.GetProperty("images")[0].GetProperty("steps").EnumerateArray()
            .Select(s => s.GetProperty("cached").GetBoolean()).ToList();
        Assert.Equal([true, true, false, false], steps);
        Assert.NotEqual(digest1, StoreReader.ManifestDigest(_store.Path, "tiny"));
        Leftovers.AssertNone(_store.Path);
    }
}
