using Kiln.Build.Sandbox;
using System.Globalization;

namespace Kiln.Build.Testing.Vm;

/// <summary>The throwaway copy of the disk the VM boots: a sparse (or reflinked) copy of the caller's disk, with
/// the check unit and script written into its root filesystem by debugfs, in place, at the partition's offset
/// (nothing is mounted, and the caller's disk is only read).</summary>
internal static class GuestDisk
{
    public static async Task<string> CopyAsync(string source, string directory, CancellationToken ct)
    {
        var copy = Path.Combine(directory, "disk.raw");
        var (status, output) = await HostCommand.RunAsync(HostCommand.StartInfo(HostPrograms.Cp.Name, ["--sparse=always", "--reflink=auto", "--", source, copy], null), ct)
            .ConfigureAwait(false);
        if (status != 0)
        {
            throw new VmException($"copying the disk {source} to {directory}: {output.Trim()}");
        }
        return copy;
    }

    /// <summary>debugfs's name for the filesystem that starts <paramref name="offset"/> bytes into <paramref name="disk"/>.</summary>
    public static string DebugfsDevice(string disk, long offset)
    {
        if (disk.Contains('?', StringComparison.Ordinal))
        {
            throw new VmException($"the work directory's path has a '?', which debugfs reads as options: {disk}");
        }
        return $"{disk}?offset={offset.ToString(CultureInfo.InvariantCulture)}";
    }

    /// <summary>The debugfs commands that add the unit and the script; host files are named relative to the
    /// folder debugfs runs in, so no host path reaches its command parser.</summary>
    public static string Commands(bool wantsDirectoryExists) =>
        string.Join('\n',
        [
            $"mkdir {GuestScript.Directory}",
            $"cd {GuestScript.Directory}",
            $"write {GuestScript.ScriptName} {GuestScript.ScriptName}",
            $"cd {GuestScript.UnitDirectory}",
            $"write {GuestScript.UnitName} {GuestScript.UnitName}",
            .. wantsDirectoryExists ? Array.Empty<string>() : [$"mkdir {GuestScript.WantsDirectory}"],
            $"symlink {GuestScript.WantsDirectory}/{GuestScript.UnitName} {GuestScript.UnitDirectory}/{GuestScript.UnitName}",
            "",
        ]);

    /// <summary>Writes the unit, its wants link and the script into the root filesystem at <paramref name="offset"/>,
    /// then reads them back to be sure.</summary>
    public static async Task InjectAsync(string debugfs, string disk, long offset, string script, string unit, string scratch,
        CancellationToken ct)
    {
        var device = DebugfsDevice(disk, offset);
        if (!await ExistsAsync(debugfs, device, GuestScript.UnitDirectory, ct).ConfigureAwait(false))
        {
            throw new VmException($"the image has no {GuestScript.UnitDirectory}: the VM check boots systemd images (add systemd-sysv to the image)");
        }
        if (await ExistsAsync(debugfs, device, GuestScript.Directory, ct).ConfigureAwait(false))
        {
            throw new VmException($"the image already has {GuestScript.Directory}; the VM check will not overwrite it");
        }
        bool wants = await ExistsAsync(debugfs, device, GuestScript.WantsDirectory, ct).ConfigureAwait(false);

        await File.WriteAllTextAsync(Path.Combine(scratch, GuestScript.ScriptName), script, ct).ConfigureAwait(false);
        await File.WriteAllTextAsync(Path.Combine(scratch, GuestScript.UnitName), unit, ct).ConfigureAwait(false);
        // debugfs takes mode, owner and group from the host file.
        File.SetUnixFileMode(Path.Combine(scratch, GuestScript.ScriptName), (UnixFileMode)Convert.ToInt32("755", 8));
        File.SetUnixFileMode(Path.Combine(scratch, GuestScript.UnitName), (UnixFileMode)Convert.ToInt32("644", 8));
        var commands = Path.Combine(scratch, "debugfs.cmd");
        await File.WriteAllTextAsync(commands, Commands(wants), ct).ConfigureAwait(false);
        var (status, output) = await HostCommand.RunAsync(HostCommand.StartInfo(debugfs, ["-w", "-f", "debugfs.cmd", device], scratch), ct).ConfigureAwait(false);
        if (status != 0)
        {
            throw new VmException($"writing the check unit into the disk's root filesystem with debugfs failed (exit {status}): {output.Trim()}");
        }

        // debugfs reports most errors without failing: read back what should now be there.
        var back = Path.Combine(scratch, "readback");
        var (dumped, dumpOutput) = await HostCommand.RunAsync(HostCommand.StartInfo(debugfs, ["-R", $"dump {GuestScript.ScriptPath} readback", device], scratch), ct)
            .ConfigureAwait(false);
        bool same = dumped == 0 && File.Exists(back) && await File.ReadAllTextAsync(back, ct).ConfigureAwait(false) == script;
        if (!same || !await ExistsAsync(debugfs, device, $"{GuestScript.WantsDirectory}/{GuestScript.UnitName}", ct).ConfigureAwait(false))
        {
            throw new VmException($"the check unit did not arrive in the disk's root filesystem; debugfs said: {output.Trim()} {dumpOutput.Trim()}");
        }
    }

    private static async Task<bool> ExistsAsync(string debugfs, string device, string path, CancellationToken ct)
    {
        var (status, output) = await HostCommand.RunAsync(HostCommand.StartInfo(debugfs, ["-R", $"stat {path}", device], null), ct).ConfigureAwait(false);
        if (status == 127 || (status != 0 && output.Contains("failed to execute", StringComparison.Ordinal)))
        {
            throw new VmException($"cannot run {debugfs} (install e2fsprogs): {output.Trim()}");
        }
        if (output.Contains("Bad magic number", StringComparison.Ordinal) || output.Contains("while trying to open", StringComparison.Ordinal))
        {
            throw new VmException($"debugfs cannot open the root filesystem: {output.Trim()}");
        }
        return output.Contains("Inode:", StringComparison.Ordinal);
    }
}
