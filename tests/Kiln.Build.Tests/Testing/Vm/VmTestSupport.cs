using System.Diagnostics;
using Kiln.Build.Definition;
using Kiln.Build.Testing.Spec;

namespace Kiln.Build.Tests.Testing.Vm;

/// <summary>Checks, host tools, tiny disks and a leftover finder for the VM phase's tests.</summary>
internal static class VmTestSupport
{
    public static readonly SourceMark Mark = new("test.yaml", 1, 1);

    public static CommandCheck Command(string command, int exit = 0, string[]? stdout = null, double timeoutSeconds = 30) => new()
    {
        Mark = Mark,
        Subject = command,
        ExitStatus = exit,
        Stdout = stdout ?? [],
        RunPhase = TestPhase.Boot,
        Timeout = TimeSpan.FromSeconds(timeoutSeconds),
    };

    public static (int ExitCode, string Stdout, string Stderr) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi)!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr);
    }

    public static string Sh(string script)
    {
        var r = Run("/bin/sh", "-c", script);
        Assert.True(r.ExitCode == 0, $"{script}\n{r.Stdout}\n{r.Stderr}");
        return r.Stdout;
    }

    /// <summary>A 64 MiB MBR disk: partition 1 FAT-typed (empty), partition 2 an ext4 filesystem with
    /// /etc/systemd/system, made at its offset without mounting. Not bootable.</summary>
    public static string TinyDisk(string dir, bool systemd = true)
    {
        var disk = Path.Combine(dir, "tiny.raw");
        Sh($"truncate -s 64M '{disk}' && printf 'label: dos\\nstart=2048, size=8192, type=c, bootable\\nstart=10240, type=83\\n' | sfdisk -q '{disk}'");
        // Partition 2 starts at sector 10240 = 5 MiB; 59 MiB of 1 KiB blocks.
        Sh($"mkfs.ext4 -q -F -b 1024 -E offset={10240 * 512} '{disk}' {59 * 1024}");
        if (systemd)
        {
            Sh($"debugfs -w -R 'mkdir /etc' '{disk}?offset={10240 * 512}' && debugfs -w -R 'mkdir /etc/systemd' '{disk}?offset={10240 * 512}' " +
               $"&& debugfs -w -R 'mkdir /etc/systemd/system' '{disk}?offset={10240 * 512}'");
        }
        return disk;
    }

    /// <summary>Processes whose command line mentions <paramref name="text"/> (other than this one).</summary>
    public static IReadOnlyList<string> ProcessesMentioning(string text)
    {
        var found = new List<string>();
        foreach (var dir in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }
            try
            {
                var cmdline = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
                if (cmdline.Contains(text, StringComparison.Ordinal))
                {
                    found.Add($"{pid}: {cmdline}");
                }
            }
            catch (IOException)
            {
            }
        }
        return found;
    }

    public static void AssertNoProcessMentions(string text)
    {
        IReadOnlyList<string> found = [];
        for (int i = 0; i < 50; i++)
        {
            found = ProcessesMentioning(text);
            if (found.Count == 0)
            {
                return;
            }
            Thread.Sleep(100);
        }
        Assert.Fail("still running:\n" + string.Join('\n', found));
    }

    public static string Sha256(string path)
    {
        using var s = File.OpenRead(path);
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(s));
    }
}

/// <summary>A temporary folder, removed on dispose.</summary>
internal sealed class ScratchDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("kiln-vm-test-").FullName;

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
