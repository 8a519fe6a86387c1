using Kiln.Build.Testing.Vm;

namespace Kiln.Build.Tests.Testing.Vm;

public sealed class QemuMachineTests
{
    private static QemuLaunch Launch(VmAccelerator accelerator) => new()
    {
        Disk = "/tmp/a,b/disk.raw",
        ConsoleLog = "/tmp/a,b/console.log",
        ResultsSocket = "kiln-vm-x-results",
        QmpSocket = "kiln-vm-x-qmp",
        Accelerator = accelerator,
        Forwards = [(40001, 8080), (40002, 80)],
    };

    [Fact]
    public void Tcg_and_kvm_command_lines_boot_the_raw_disk_on_virtio_with_two_serial_ports_and_forwarded_ports()
    {
        var tcg = string.Join(' ', QemuMachine.Arguments(Launch(VmAccelerator.Tcg)));
        Assert.Contains("-accel tcg -m 1024 -smp 2", tcg);
        Assert.Contains("-drive file=/tmp/a,,b/disk.raw,format=raw,if=virtio,cache=unsafe", tcg);
        Assert.Contains("-netdev user,id=net0,hostfwd=tcp:127.0.0.1:40001-:8080,hostfwd=tcp:127.0.0.1:40002-:80", tcg);
        Assert.Contains("-chardev file,id=console,path=/tmp/a,,b/console.log -serial chardev:console", tcg);
        Assert.Contains("-chardev socket,id=results,path=kiln-vm-x-results,abstract=on,server=on,wait=on -serial chardev:results", tcg);
        Assert.Contains("-no-reboot", tcg);
        Assert.DoesNotContain("kvm", tcg);
        Assert.Contains("-accel kvm -cpu host", string.Join(' ', QemuMachine.Arguments(Launch(VmAccelerator.Kvm))));
    }

    [Fact]
    public void An_explicit_accelerator_is_kept_and_auto_resolves_to_one_of_them()
    {
        Assert.Equal(VmAccelerator.Tcg, QemuMachine.Resolve(VmAccelerator.Tcg));
        Assert.NotEqual(VmAccelerator.Auto, QemuMachine.Resolve(VmAccelerator.Auto));
    }

    [Fact]
    public void Default_boot_timeouts_are_longer_under_emulation()
    {
        var o = new VmOptions();
        Assert.Equal((TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(300)), (o.BootTimeoutFor(VmAccelerator.Kvm), o.BootTimeoutFor(VmAccelerator.Tcg)));
        Assert.Equal(TimeSpan.FromSeconds(9), (o with { BootTimeout = TimeSpan.FromSeconds(9) }).BootTimeoutFor(VmAccelerator.Tcg));
    }
}
