using Kiln.Build.Execution;
using Kiln.Build.Sandbox;

namespace Kiln.Build.Testing.Vm;

/// <summary>How qemu runs the guest: hardware virtualisation (KVM) or emulation (TCG).</summary>
public enum VmAccelerator
{
    /// <summary>KVM when /dev/kvm is usable and the CPU has virtualisation extensions, TCG otherwise.</summary>
    Auto,
    Kvm,
    Tcg,
}

/// <summary>Options of the VM phase. Every default suits a small Debian server image.</summary>
public sealed record VmOptions
{
    public VmAccelerator Accelerator { get; init; } = VmAccelerator.Auto;

    /// <summary>From starting qemu to the guest's ready marker; null means 60 s under KVM, 300 s under TCG.</summary>
    public TimeSpan? BootTimeout { get; init; }

    /// <summary>After <c>system_powerdown</c>, how long the guest may take to power off before qemu is stopped.</summary>
    public TimeSpan PowerOffTimeout { get; init; } = TimeSpan.FromSeconds(20);

    public int MemoryMiB { get; init; } = 1024;

    public int Cpus { get; init; } = 2;

    /// <summary>Where the throwaway copy of the disk and the serial logs are made (a folder of their own inside it,
    /// removed afterwards); null means the disk's own folder, so the copy can share its blocks (reflink) there.</summary>
    public string? WorkDirectory { get; init; }

    public string QemuPath { get; init; } = HostPrograms.QemuSystem.Name;

    /// <summary>Read-only raw drives attached after the disk, e.g. a cloud-init NoCloud seed ISO (label cidata).</summary>
    public IReadOnlyList<string> ExtraDrives { get; init; } = [];

    public string DebugfsPath { get; init; } = HostPrograms.Debugfs.Name;

    /// <summary>Where the phase is (preparing the disk, booting, ready, checking, powering off), with times.</summary>
    public IProgress<VmEvent>? Progress { get; init; }

    /// <summary>The boot timeout that applies under <paramref name="accelerator"/> (Kvm or Tcg).</summary>
    public TimeSpan BootTimeoutFor(VmAccelerator accelerator) =>
        BootTimeout ?? (accelerator == VmAccelerator.Kvm ? TimeSpan.FromSeconds(60) : TimeSpan.FromSeconds(300));
}

public enum VmStage { Preparing, Booting, Ready, Checking, PoweringOff, Finished }

/// <summary>A step of the VM phase; <paramref name="Elapsed"/> counts from the start of the phase.</summary>
public sealed record VmEvent(VmStage Stage, string Message, TimeSpan Elapsed);

/// <summary>A <see cref="VmEvent"/> of <paramref name="Image"/>'s VM phase, as build progress (for the CLI to show).</summary>
public sealed record VmProgress(string Image, VmEvent Event) : BuildEvent(Image);

/// <summary>The VM phase could not be set up: the disk is unreadable or has no root partition, a tool is missing,
/// or the disk could not be prepared. (A guest that does not come up is not an exception: its checks fail.)</summary>
public sealed class VmException : Exception
{
    public VmException(string message, Exception? inner = null) : base(message, inner)
    {
    }
}
