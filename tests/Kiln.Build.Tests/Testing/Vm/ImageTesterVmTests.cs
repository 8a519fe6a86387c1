using Kiln.Build.Execution;
using Kiln.Build.Store;
using Kiln.Build.Testing;
using Kiln.Build.Testing.Spec;
using Kiln.Build.Testing.Vm;
using Kiln.Oci;

namespace Kiln.Build.Tests.Testing.Vm;

public sealed class ImageTesterVmTests
{
    private sealed class Events : IProgress<BuildEvent>
    {
        public List<BuildEvent> All { get; } = [];

        public void Report(BuildEvent value)
        {
            lock (All)
            {
                All.Add(value);
            }
        }
    }

    [Fact]
    public async Task The_vm_phase_reports_like_the_others_and_takes_only_the_checks_a_vm_can_run()
    {
        using var dir = new ScratchDir();
        var disk = VmTestSupport.TinyDisk(dir.Path);
        using var store = KilnStore.Open(Path.Combine(dir.Path, "store"));
        var events = new Events();
        var spec = new TestSpec
        {
            Checks = [new FileCheck { Mark = VmTestSupport.Mark, Subject = "/etc/passwd" }, VmTestSupport.Command("true")],
            Canonical = "",
            Digest = Digest.Compute([]),
        };
        var vm = new VmOptions { Accelerator = VmAccelerator.Tcg, BootTimeout = TimeSpan.FromSeconds(3), MemoryMiB = 128 };

        var result = await new ImageTester(store, new TestOptions(), events).TestVmAsync("tiny", spec, disk, vm);

        var phase = Assert.Single(result.Phases);
        Assert.Equal(("vm", false), (phase.Phase, phase.Passed));
        Assert.Equal(["command true"], phase.Checks.Select(c => c.Name));
        Assert.IsType<TestPhaseStarted>(events.All[0]);
        Assert.Equal("vm", ((TestPhaseStarted)events.All[0]).Phase);
        Assert.Contains(events.All, e => e is VmProgress { Event.Stage: VmStage.Booting });
        Assert.Equal("command true", Assert.Single(events.All.OfType<CheckFinished>()).Check.Name);
        Assert.Equal(phase, ((TestPhaseFinished)events.All[^1]).Report);
        Assert.Equal("vm", ImageTester.PhaseName(TestPhase.Vm));
    }
}
