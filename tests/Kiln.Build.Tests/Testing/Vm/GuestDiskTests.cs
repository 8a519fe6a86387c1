using Kiln.Build.Testing.Vm;

namespace Kiln.Build.Tests.Testing.Vm;

public sealed class GuestDiskTests
{
    private const long Offset = 10240L * 512;

    [Fact]
    public async Task Writes_the_unit_its_wants_link_and_the_script_into_the_root_partition_and_fsck_stays_clean()
    {
        using var dir = new ScratchDir();
        var disk = VmTestSupport.TinyDisk(dir.Path);
        var work = Directory.CreateDirectory(Path.Combine(dir.Path, "work")).FullName;
        var script = GuestScript.Script([new GuestProbe(0, "echo 'hi'", TimeSpan.FromSeconds(5))]);
        await GuestDisk.InjectAsync("debugfs", disk, Offset, script, GuestScript.Unit(), work, CancellationToken.None);

        var device = GuestDisk.DebugfsDevice(disk, Offset);
        Assert.Equal(GuestScript.Unit(), VmTestSupport.Run("debugfs", "-R", $"cat {GuestScript.UnitDirectory}/{GuestScript.UnitName}", device).Stdout);
        Assert.Equal(script, VmTestSupport.Run("debugfs", "-R", $"cat {GuestScript.ScriptPath}", device).Stdout);
        var script_ = VmTestSupport.Run("debugfs", "-R", $"stat {GuestScript.ScriptPath}", device).Stdout;
        Assert.Contains("Mode:  0755", script_);
        Assert.Contains("User:     0   Group:     0", script_);
        var link = VmTestSupport.Run("debugfs", "-R", $"stat {GuestScript.WantsDirectory}/{GuestScript.UnitName}", device).Stdout;
        Assert.Contains($"Fast link dest: \"{GuestScript.UnitDirectory}/{GuestScript.UnitName}\"", link);

        var part = Path.Combine(dir.Path, "root.img");
        VmTestSupport.Sh($"dd if='{disk}' of='{part}' bs=512 skip=10240 status=none");
        var fsck = VmTestSupport.Run("e2fsck", "-fn", part);
        Assert.True(fsck.ExitCode == 0, fsck.Stdout + fsck.Stderr);
    }

    [Fact]
    public async Task An_image_without_systemd_units_is_refused_with_the_package_to_add()
    {
        using var dir = new ScratchDir();
        var disk = VmTestSupport.TinyDisk(dir.Path, systemd: false);
        var e = await Assert.ThrowsAsync<VmException>(() =>
            GuestDisk.InjectAsync("debugfs", disk, Offset, "#!/bin/sh\n", GuestScript.Unit(), dir.Path, CancellationToken.None));
        Assert.Contains("add systemd-sysv", e.Message);
    }

    [Fact]
    public async Task The_copy_is_sparse_and_identical()
    {
        using var dir = new ScratchDir();
        var disk = VmTestSupport.TinyDisk(dir.Path);
        var work = Directory.CreateDirectory(Path.Combine(dir.Path, "work")).FullName;
        var copy = await GuestDisk.CopyAsync(disk, work, CancellationToken.None);
        Assert.Equal(VmTestSupport.Sha256(disk), VmTestSupport.Sha256(copy));
        var allocatedKiB = long.Parse(VmTestSupport.Sh($"du -k '{copy}' | cut -f1").Trim(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(allocatedKiB < 32 * 1024, $"{allocatedKiB} KiB allocated for a 64 MiB mostly empty disk");
    }
}
