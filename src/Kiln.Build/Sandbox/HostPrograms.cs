namespace Kiln.Build.Sandbox;

/// <summary>What a host program is needed for, which decides the field of packaging/control that must name its package.</summary>
public enum HostProgramUse
{
    /// <summary>Building, testing (bake and boot phases) or exporting: the main job (<c>Depends</c>).</summary>
    Main,

    /// <summary>Only <c>kiln test --phase vm</c> (<c>Recommends</c>).</summary>
    VmTest,

    /// <summary>Only <c>kiln release</c>: the balancer and the instances' network (<c>Recommends</c>).</summary>
    Release,
}

/// <summary>A program of the host that kiln starts (or, for the MBR code, a file of the host that it reads), and the
/// Debian package it comes with. <see cref="Name"/> is what is run: a name looked up on PATH, or an absolute path.</summary>
public sealed record HostProgram(string Name, string Package, HostProgramUse Use = HostProgramUse.Main)
{
    public override string ToString() => Name;
}

/// <summary>Every host program kiln starts. Call sites take the name from here rather than from a string literal, so
/// that one test can check that packaging/control (the package's Depends, and what scripts/setup.sh installs) covers
/// each of them: a program missing there breaks the README's command only on a fresh machine.</summary>
public static class HostPrograms
{
    // Every process kiln starts goes through setpriv --pdeathsig (see HostCommand), and the sandboxes through unshare.
    public static readonly HostProgram Setpriv = new("setpriv", "util-linux");
    public static readonly HostProgram Unshare = new("unshare", "util-linux");
    public static readonly HostProgram Nsenter = new("nsenter", "util-linux");
    public static readonly HostProgram Mount = new("mount", "mount");
    public static readonly HostProgram Chroot = new("chroot", "coreutils");
    public static readonly HostProgram Cp = new("cp", "coreutils");
    public static readonly HostProgram Find = new("find", "findutils");

    /// <summary>The host's shell, for the few host commands that need redirections.</summary>
    public static readonly HostProgram Sh = new("/bin/sh", "dash");

    /// <summary>Runs the bootstrap; its hooks run <see cref="Find"/> and <see cref="Cp"/> on the host.</summary>
    public static readonly HostProgram Mmdebstrap = new("mmdebstrap", "mmdebstrap");
    public static readonly HostProgram DpkgDeb = new("dpkg-deb", "dpkg");

    /// <summary>Boots a <c>boot: systemd</c> image in the boot phase.</summary>
    public static readonly HostProgram SystemdNspawn = new("systemd-nspawn", "systemd-container");

    // Disk outputs (raw, qcow2, vagrant) and the incremental disk update.
    public static readonly HostProgram Sfdisk = new("sfdisk", "fdisk");
    public static readonly HostProgram MkfsExt4 = new("mkfs.ext4", "e2fsprogs");
    public static readonly HostProgram Debugfs = new("debugfs", "e2fsprogs");
    public static readonly HostProgram E2fsck = new("e2fsck", "e2fsprogs");
    public static readonly HostProgram Dumpe2fs = new("dumpe2fs", "e2fsprogs");
    public static readonly HostProgram MkfsVfat = new("mkfs.vfat", "dosfstools");
    public static readonly HostProgram Syslinux = new("syslinux", "syslinux");
    public static readonly HostProgram Mcopy = new("mcopy", "mtools");
    public static readonly HostProgram QemuImg = new("qemu-img", "qemu-utils");

    /// <summary>Writes only the changed byte ranges of a disk into the qcow2 written before (an app change's output).</summary>
    public static readonly HostProgram QemuIo = new("qemu-io", "qemu-utils");

    /// <summary>SYSLINUX's MBR boot code, a file rather than a program, written into every disk.</summary>
    public static readonly HostProgram SyslinuxMbr = new("/usr/lib/syslinux/mbr/mbr.bin", "syslinux-common");

    /// <summary>Writes a service's cloud-init seed as an ISO labelled cidata (<c>kiln seed</c>, the VM pair test).</summary>
    public static readonly HostProgram Genisoimage = new("genisoimage", "genisoimage");

    public static readonly HostProgram QemuSystem = new("qemu-system-x86_64", "qemu-system-x86", HostProgramUse.VmTest);

    /// <summary>Detaches the instances of a release target from kiln's session: they outlive the command.</summary>
    public static readonly HostProgram Setsid = new("setsid", "util-linux");

    /// <summary>A release target's balancer.</summary>
    public static readonly HostProgram Haproxy = new("haproxy", "haproxy", HostProgramUse.Release);

    /// <summary>The CNI plugin that joins a release instance's network namespace to the host bridge (it runs the
    /// host-local IPAM plugin beside it).</summary>
    public static readonly HostProgram CniBridge = new("/usr/lib/cni/bridge", "containernetworking-plugins", HostProgramUse.Release);

    /// <summary>Removes a release bridge no target uses any more.</summary>
    public static readonly HostProgram Ip = new("ip", "iproute2", HostProgramUse.Release);

    public static IReadOnlyList<HostProgram> All { get; } =
    [
        Setpriv, Unshare, Nsenter, Mount, Chroot, Cp, Find, Sh, Mmdebstrap, DpkgDeb, SystemdNspawn,
        Sfdisk, MkfsExt4, Debugfs, E2fsck, Dumpe2fs, MkfsVfat, Syslinux, Mcopy, QemuImg, QemuIo, SyslinuxMbr, Genisoimage, QemuSystem,
        Setsid, Haproxy, CniBridge, Ip,
    ];

    /// <summary>The Debian package of the program looked up on PATH as <paramref name="file"/> (its name or a path to
    /// it), or null. Not for /bin/sh: it fails for what it runs, whose package it cannot know.</summary>
    public static string? PackageOf(string file)
    {
        var name = Path.GetFileName(file);
        return All.FirstOrDefault(p => !Path.IsPathRooted(p.Name) && p.Name == name)?.Package;
    }

    /// <summary>" (it comes with the Debian package P: ...)" for a program of this catalogue, else "".</summary>
    public static string InstallHint(string file) =>
        PackageOf(file) is { } package ? $" (it comes with the Debian package {package}: apt-get install {package})" : "";

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> s_resolved = new(StringComparer.Ordinal);

    /// <summary>The program's absolute path, looked up on <see cref="Sandbox.DefaultPath"/> once per process: for a
    /// program run where the environment (PATH included) is an image's.</summary>
    public static string Resolve(HostProgram program)
    {
        ArgumentNullException.ThrowIfNull(program);
        return s_resolved.GetOrAdd(program.Name, static (name, program) =>
            Path.IsPathRooted(name) ? (File.Exists(name) ? name : throw NotFound(program))
            : Sandbox.DefaultPath.Split(':').Select(dir => Path.Combine(dir, name)).FirstOrDefault(File.Exists) ?? throw NotFound(program),
            program);
    }

    private static SandboxException NotFound(HostProgram program) =>
        SandboxException.SetupFailed($"{program.Name}: not found on the host ({Sandbox.DefaultPath}); it comes with the Debian package {program.Package}: apt-get install {program.Package}");
}
