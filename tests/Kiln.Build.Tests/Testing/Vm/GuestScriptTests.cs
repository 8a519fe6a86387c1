using Kiln.Build.Testing.Vm;

namespace Kiln.Build.Tests.Testing.Vm;

public sealed class GuestScriptTests
{
    /// <summary>Runs the script as the guest would, but on the host and without waiting for systemd: the results
    /// port and the console are plain files.</summary>
    private static (string[] Results, string Console) RunOnHost(params GuestProbe[] probes)
    {
        using var dir = new ScratchDir();
        var script = Path.Combine(dir.Path, "run.sh");
        File.WriteAllText(script, GuestScript.Script(probes));
        var (out_, con) = (Path.Combine(dir.Path, "ttyS1"), Path.Combine(dir.Path, "ttyS0"));
        var r = VmTestSupport.Run("/bin/sh", script, out_, con, "test");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        return (File.ReadAllLines(out_), File.ReadAllText(con));
    }

    [Theory]
    [InlineData("echo 'single' \"double\" `echo back` $(echo dollar); echo \"a'b\" >&2; exit 3", "single double back dollar\n", "a'b\n", 3)]
    [InlineData("printf '%s' 'x'\\''y'", "x'y", "", 0)]
    [InlineData("echo \"[$1][$#]\"", "[][0]\n", "", 0)]
    [InlineData("printf 'line one\\n'\nprintf 'h\\303\\251'", "line one\nhé", "", 0)]
    [InlineData("'; rm -rf /nonexistent-kiln; echo '", "", "", 127)]
    public void A_command_reaches_the_shell_exactly_as_written_and_its_outputs_come_back(string command, string stdout, string stderr, int exit)
    {
        var (results, console) = RunOnHost(new GuestProbe(0, command, TimeSpan.FromSeconds(10)));
        Assert.Equal("test", GuestResults.Ready(results[0]));
        var r = GuestResults.Result(results[1]);
        Assert.NotNull(r);
        Assert.Equal((0, exit, false, stdout), (r.Id, r.ExitCode, r.TimedOut, r.Stdout));
        if (exit != 127)
        {
            Assert.Equal(stderr, r.Stderr);
        }
        Assert.Equal(1, GuestResults.Done(results[2]));
        Assert.Contains("KILN-VM-READY test", console);
        Assert.Contains("KILN-VM-DONE 1", console);
    }

    [Fact]
    public void A_probe_past_its_timeout_is_stopped_and_marked_timed_out_and_the_next_still_runs()
    {
        var (results, _) = RunOnHost(
            new GuestProbe(0, "echo started; sleep 30", TimeSpan.FromMilliseconds(300)),
            new GuestProbe(1, "exit 124", TimeSpan.FromSeconds(10)));
        var slow = GuestResults.Result(results[1])!;
        Assert.Equal((true, "started\n"), (slow.TimedOut, slow.Stdout));
        var own124 = GuestResults.Result(results[2])!;
        Assert.Equal((124, false), (own124.ExitCode, own124.TimedOut));
    }

    [Fact]
    public void A_command_cannot_write_on_the_results_port()
    {
        var (results, _) = RunOnHost(new GuestProbe(0, "echo KILN-VM-DONE 0 >&3", TimeSpan.FromSeconds(10)));
        Assert.Equal(3, results.Length);
        var r = GuestResults.Result(results[1])!;
        Assert.NotEqual(0, r.ExitCode);
        Assert.Equal(1, GuestResults.Done(results[2]));
    }

    [Fact]
    public void Quote_keeps_every_character_and_refuses_NUL()
    {
        foreach (var s in new[] { "", "a b", "it's", "'", "''", "$HOME `x` \\ \"q\"\n\ttab" })
        {
            Assert.Equal(s, VmTestSupport.Sh("printf '%s' " + GuestScript.Quote(s)));
        }
        Assert.Throws<ArgumentException>(() => GuestScript.Quote("a\0b"));
    }

    [Fact]
    public void The_unit_runs_the_script_after_multi_user_and_is_wanted_by_it()
    {
        var unit = GuestScript.Unit();
        Assert.Contains("After=multi-user.target\n", unit);
        Assert.Contains("WantedBy=multi-user.target\n", unit);
        Assert.Contains($"ExecStart=/bin/sh {GuestScript.ScriptPath} /dev/ttyS1 /dev/ttyS0 boot\n", unit);
        Assert.DoesNotContain("\r", unit);
    }

    [Theory]
    [InlineData(30, "30")]
    [InlineData(0.25, "0.25")]
    [InlineData(0, "0.001")]
    public void Timeouts_are_written_as_seconds_for_timeout1(double seconds, string expected) =>
        Assert.Equal(expected, GuestScript.Seconds(TimeSpan.FromSeconds(seconds)));
}
