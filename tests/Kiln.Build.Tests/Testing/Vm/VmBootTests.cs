using System.Diagnostics;
using Kiln.Build.Execution;
using Kiln.Build.Testing.Spec;
using Kiln.Build.Testing.Vm;
using Xunit.Abstractions;

namespace Kiln.Build.Tests.Testing.Vm;

/// <summary>Runs only when KILN_TEST_RAW_DISK names a bootable raw disk (the exporter's layout) of a Debian systemd
/// image that gets DHCP on its NIC and serves HTTP 200 on port 8080, such as examples/web's server image exported
/// with <c>kiln export server --format raw</c>. Skipped (and reported as skipped) otherwise.</summary>
public sealed class BootableDiskFactAttribute : FactAttribute
{
    public const string Variable = "KILN_TEST_RAW_DISK";

    public BootableDiskFactAttribute()
    {
        if (Environment.GetEnvironmentVariable(Variable) is not { Length: > 0 } path || !File.Exists(path))
        {
            Skip = $"set {Variable} to a bootable raw disk to boot it under qemu";
        }
    }
}

public sealed class VmBootTests(ITestOutputHelper output)
{
    private sealed class Events : IProgress<VmEvent>
    {
        public List<VmEvent> All { get; } = [];

        public void Report(VmEvent value)
        {
            lock (All)
            {
                All.Add(value);
            }
        }
    }

    [BootableDiskFact]
    public async Task Boots_the_disk_runs_checks_in_the_guest_and_over_forwarded_http_then_powers_off_and_leaves_nothing()
    {
        var disk = Environment.GetEnvironmentVariable(BootableDiskFactAttribute.Variable)!;
        using var work = new ScratchDir();
        var hash = VmTestSupport.Sha256(disk);
        var mark = VmTestSupport.Mark;
        Check[] checks =
        [
            VmTestSupport.Command("grep -q bookworm /etc/os-release && echo \"it's $((6 * 7))\"", stdout: ["it's 42"]),
            VmTestSupport.Command("exit 3", exit: 3),
            VmTestSupport.Command("echo wrong", stdout: ["right"]),
            new ServiceCheck { Mark = mark, Subject = "systemd-journald.service", Active = true },
            new ServiceCheck { Mark = mark, Subject = "systemd-networkd.service", Enabled = true, Active = true },
            new PortCheck { Mark = mark, Subject = "tcp:8080", Protocol = "tcp", Port = 8080 },
            new PortCheck { Mark = mark, Subject = "tcp:65000", Protocol = "tcp", Port = 65000, Listening = false },
            new HttpCheck { Mark = mark, Subject = "http://127.0.0.1:8080/", Url = new Uri("http://127.0.0.1:8080/"), Timeout = TimeSpan.FromSeconds(30) },
        ];
        var events = new Events();
        var clock = Stopwatch.StartNew();

        var reports = await VmPhase.RunAsync(disk, checks, new VmOptions { WorkDirectory = work.Path, Progress = events }, _ => { });

        var log = string.Join('\n', events.All.Select(e => $"{e.Elapsed.TotalSeconds:0.0}s {e.Stage} {e.Message}"))
            + "\n" + string.Join('\n', reports.Select(r => $"{r.Name}: {string.Join("; ", r.Failures.Select(f => $"{f.Matcher}: {f.Expected} / {f.Actual}"))}"));
        Assert.True(reports.Where(r => r.Name != "command echo wrong").All(r => r.Passed), log);
        var wrong = Assert.Single(reports, r => r.Name == "command echo wrong");
        Assert.Equal(new CheckFailure("stdout", "\"right\"", "\"wrong\""), Assert.Single(wrong.Failures));
        Assert.Contains(events.All, e => e.Stage == VmStage.Ready);
        Assert.Equal("the guest powered off", events.All[^1].Message);
        Assert.Empty(Directory.GetFileSystemEntries(work.Path));
        VmTestSupport.AssertNoProcessMentions(work.Path);
        Assert.Equal(hash, VmTestSupport.Sha256(disk));
        // The boot time, for the record (visible with --logger "console;verbosity=detailed").
        output.WriteLine($"VM phase took {clock.Elapsed.TotalSeconds:0.0} s:\n{log}");
    }

    [BootableDiskFact]
    public async Task A_guest_not_up_in_time_fails_every_check_with_the_end_of_its_serial_console()
    {
        var disk = Environment.GetEnvironmentVariable(BootableDiskFactAttribute.Variable)!;
        using var work = new ScratchDir();
        var options = new VmOptions { WorkDirectory = work.Path, Accelerator = VmAccelerator.Tcg, BootTimeout = TimeSpan.FromSeconds(12) };

        var reports = await VmPhase.RunAsync(disk, [VmTestSupport.Command("true"), VmTestSupport.Command("false", exit: 1)], options, _ => { });

        Assert.All(reports, r =>
        {
            var actual = Assert.Single(r.Failures).Actual;
            Assert.StartsWith("no ready marker from the guest within 12 s; the last ", actual);
            var console = actual[(actual.IndexOf(":\n", StringComparison.Ordinal) + 2)..].Split('\n');
            Assert.InRange(console.Length, 1, VmPhase.ConsoleLines);
            Assert.DoesNotContain(console, l => l.Contains('\u001b', StringComparison.Ordinal));
        });
        Assert.Empty(Directory.GetFileSystemEntries(work.Path));
        VmTestSupport.AssertNoProcessMentions(work.Path);
    }
}
