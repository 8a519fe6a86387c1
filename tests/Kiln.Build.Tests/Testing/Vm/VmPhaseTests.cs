using Kiln.Build.Execution;
using Kiln.Build.Testing.Spec;
using Kiln.Build.Testing.Vm;

namespace Kiln.Build.Tests.Testing.Vm;

/// <summary>The VM phase with real qemu (TCG) on a disk that never boots: what fails, and what is left.</summary>
public sealed class VmPhaseTests
{
    private sealed class Events : IProgress<VmEvent>
    {
        public List<VmEvent> All { get; } = [];
        public Action<VmEvent>? On { get; set; }

        public void Report(VmEvent value)
        {
            lock (All)
            {
                All.Add(value);
            }
            On?.Invoke(value);
        }
    }

    private static Check[] Checks =>
    [
        VmTestSupport.Command("true"),
        new HttpCheck { Mark = VmTestSupport.Mark, Subject = "http://127.0.0.1:8080/", Url = new Uri("http://127.0.0.1:8080/") },
    ];

    private static void AssertOnlyTheDiskRemains(ScratchDir dir, string disk, string hash)
    {
        VmTestSupport.AssertNoProcessMentions(dir.Path);
        Assert.Equal([disk], Directory.GetFileSystemEntries(dir.Path));
        Assert.Equal(hash, VmTestSupport.Sha256(disk));
    }

    [Fact]
    [Trait("Tier", "Slow")] // boots qemu
    public async Task A_guest_that_never_shows_the_marker_fails_every_check_and_leaves_nothing_running_or_on_disk()
    {
        using var dir = new ScratchDir();
        var disk = VmTestSupport.TinyDisk(dir.Path);
        var hash = VmTestSupport.Sha256(disk);
        var events = new Events();
        var finished = new List<CheckReport>();
        var options = new VmOptions { Accelerator = VmAccelerator.Tcg, BootTimeout = TimeSpan.FromSeconds(4), Progress = events, MemoryMiB = 128 };

        var reports = await VmPhase.RunAsync(disk, Checks, options, finished.Add);

        Assert.Equal(reports, finished);
        Assert.Equal(["command true", "http http://127.0.0.1:8080/"], reports.Select(r => r.Name));
        Assert.All(reports, r =>
        {
            var f = Assert.Single(r.Failures);
            Assert.Equal(("boot", "the VM comes up within 4 s"), (f.Matcher, f.Expected));
            Assert.StartsWith("no ready marker from the guest within 4 s; the", f.Actual);
        });
        Assert.Equal([VmStage.Preparing, VmStage.Preparing, VmStage.Booting, VmStage.PoweringOff, VmStage.Finished], events.All.Select(e => e.Stage));
        Assert.Equal("qemu was stopped", events.All[^1].Message);
        AssertOnlyTheDiskRemains(dir, disk, hash);
    }

    [Fact]
    [Trait("Tier", "Slow")] // boots qemu
    public async Task Cancelling_while_it_boots_stops_qemu_and_removes_the_copy()
    {
        using var dir = new ScratchDir();
        var disk = VmTestSupport.TinyDisk(dir.Path);
        var hash = VmTestSupport.Sha256(disk);
        using var cts = new CancellationTokenSource();
        var sawQemu = false;
        var events = new Events
        {
            On = e =>
            {
                if (e.Stage == VmStage.Booting)
                {
                    sawQemu = VmTestSupport.ProcessesMentioning(dir.Path).Any(p => p.Contains("qemu-system-x86_64", StringComparison.Ordinal));
                    cts.CancelAfter(TimeSpan.FromSeconds(1));
                }
            },
        };
        var options = new VmOptions { Accelerator = VmAccelerator.Tcg, Progress = events, MemoryMiB = 128 };

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => VmPhase.RunAsync(disk, Checks, options, _ => { }, cts.Token));

        Assert.True(sawQemu, "qemu was running while the guest booted");
        AssertOnlyTheDiskRemains(dir, disk, hash);
    }

    [Fact]
    public async Task A_qemu_that_cannot_start_is_an_error_that_says_so_and_leaves_nothing()
    {
        using var dir = new ScratchDir();
        var disk = VmTestSupport.TinyDisk(dir.Path);
        var hash = VmTestSupport.Sha256(disk);
        var options = new VmOptions { Accelerator = VmAccelerator.Tcg, QemuPath = "/nonexistent/qemu-system-x86_64" };

        var e = await Assert.ThrowsAsync<VmException>(() => VmPhase.RunAsync(disk, Checks, options, _ => { }));

        Assert.Contains("qemu exited at start", e.Message);
        Assert.Contains("/nonexistent/qemu-system-x86_64", e.Message);
        AssertOnlyTheDiskRemains(dir, disk, hash);
    }

    [Fact]
    public void The_not_ready_message_quotes_the_console_or_says_it_stayed_empty()
    {
        Assert.Equal("late; the serial console stayed empty", VmPhase.NotReadyMessage("late", []));
        Assert.Equal("late; the last 2 lines of the serial console:\nA\nB", VmPhase.NotReadyMessage("late", ["A", "B"]));
    }
}
