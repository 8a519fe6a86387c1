using System.Text;
using Kiln.Build.Definition;
using Kiln.Build.Execution;
using Kiln.Build.Layers;
using Kiln.Build.Planning;
using Kiln.Build.Sandbox;
using Kiln.Build.Store;
using Kiln.Oci;

namespace Kiln.Build.Exporters.Disk;

/// <summary>What a Vagrant box adds to its image so that <c>vagrant up</c> can reach the guest: openssh-server and
/// sudo, the user <c>vagrant</c> with passwordless sudo, and Vagrant's insecure public key, which Vagrant replaces
/// with a key of its own on the first <c>up</c>. They are two layers on top of the image, made by the step machinery
/// (a packages step and a run step in the sandbox, with the shared apt cache and the image's own apt sources) and
/// cached by key like any step, so the box of an unchanged image does not make them again. The image itself and its
/// other outputs never hold them.</summary>
internal static class VagrantAccess
{
    /// <summary>Names what the box adds; part of the steps' keys and of the record of a written box.</summary>
    public const string Version = "kiln/vagrant/v1";

    public const string KeyPrefix = Version + "\n";

    /// <summary>The box's disk is kept in the store as IMAGE+vagrant.</summary>
    public const string DiskSuffix = "+vagrant";

    /// <summary>Vagrant's well-known insecure public key, as Debian's vagrant 2.3.4 ships it
    /// (<c>/usr/share/rubygems-integration/all/gems/vagrant-2.3.4/keys/vagrant.pub</c>). It is public by design:
    /// Vagrant logs in with the matching private key once and then swaps it for a key of the machine's own.</summary>
    public const string InsecurePublicKey =
        "ssh-rsa AAAAB3NzaC1yc2EAAAABIwAAAQEA6NF8iallvQVp22WDkTkyrtvp9eWW6A8YVr+kz4TjGYe7gHzIw+niNltGEFHzD8+v1I2YJ6oXevct1YeS0o9HZyN1Q9qgCgzUFtdOKLv6IedplqoPkcmF0aYet2PkEDo3MlTBckFXPITAMzF8dJSIFo9D8HfdOV0IAdx4O7PtixWKn5y2hMNG0zQPyUecp4pzC6kivAIhyfHilFR61RGL+GPXQ2MWZWFYbAGjyiYJnAmCP3NOTd0jMZEnDkbUvxhMmBYSdETk1rRgm+R4LOzFUGaHqHDLKLX+FIPKcF96hrucXzcWyLbIbEgE98OHlnVYCzRdK8jlqm8tehUc9c9WhQ== vagrant insecure public key";

    /// <summary>The sudoers entry, in <c>/etc/sudoers.d/vagrant</c>.</summary>
    public const string SudoersEntry = "vagrant ALL=(ALL) NOPASSWD: ALL";

    /// <summary>Writes the SSH host keys at the first boot of each machine (<c>ssh-keygen -A</c>, before ssh.service):
    /// keys made while the box was built would be shared by every machine made from it.</summary>
    public const string HostKeysUnit = """
        [Unit]
        Description=SSH host keys of this machine (the Vagrant box carries none)
        Before=ssh.service
        ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

        [Service]
        Type=oneshot
        ExecStart=/usr/bin/ssh-keygen -A

        [Install]
        WantedBy=ssh.service
        """;

    public const string HostKeysUnitName = "kiln-ssh-host-keys.service";

    /// <summary>The run step. The account's password is <c>*</c> (no password login, but not locked, which some sshd
    /// settings refuse even for keys).</summary>
    public static string Script => new StringBuilder()
        .Append("set -e\n")
        .Append("id vagrant >/dev/null 2>&1 || useradd --create-home --user-group --shell /bin/bash vagrant\n")
        .Append("usermod -p '*' vagrant\n")
        .Append("home=$(getent passwd vagrant | cut -d: -f6)\n")
        .Append("install -d -m 0700 -o vagrant -g vagrant \"$home/.ssh\"\n")
        .Append("printf '%s\\n' '").Append(InsecurePublicKey).Append("' > \"$home/.ssh/authorized_keys\"\n")
        .Append("chown vagrant:vagrant \"$home/.ssh/authorized_keys\" && chmod 0600 \"$home/.ssh/authorized_keys\"\n")
        .Append("printf '%s\\n' '").Append(SudoersEntry).Append("' > /etc/sudoers.d/vagrant\n")
        .Append("chmod 0440 /etc/sudoers.d/vagrant\n")
        .Append("visudo -cqf /etc/sudoers.d/vagrant\n")
        .Append("if command -v systemctl >/dev/null; then\n")
        .Append("  printf '%s\\n' '").Append(HostKeysUnit.Replace("\n", "' '", StringComparison.Ordinal)).Append("' > /etc/systemd/system/").Append(HostKeysUnitName).Append('\n')
        .Append("  systemctl enable ").Append(HostKeysUnitName).Append(" ssh.service\n")
        .Append("  rm -f /etc/ssh/ssh_host_*\n")
        .Append("fi\n")
        .ToString();

    public static IReadOnlyList<StepDefinition> Steps { get; } =
    [
        new PackagesStep { Mark = new SourceMark("vagrant box", 1, 1), Packages = ["openssh-server", "sudo"] },
        new RunStep { Mark = new SourceMark("vagrant box", 2, 1), Command = Script },
    ];

    /// <summary>The key of the box's base: the image's manifest digest, which covers its layers and config.</summary>
    public static string BaseKey(Digest manifest) =>
        Convert.ToHexStringLower(Sha256Hasher.HashData(Encoding.UTF8.GetBytes(KeyPrefix + manifest.Value)));

    public static IReadOnlyList<StepPlan> Plan(Digest manifest)
    {
        var plans = new List<StepPlan>();
        var parent = BaseKey(manifest);
        foreach (var step in Steps)
        {
            var canonical = CanonicalForm.Step(step);
            var key = Planner.StepKey(parent, canonical, []);
            plans.Add(new StepPlan
            {
                Index = plans.Count,
                Step = step,
                CacheKey = key,
                Canonical = canonical,
                Description = step is PackagesStep ? "vagrant: packages openssh-server sudo" : "vagrant: user vagrant, its key and sudo",
                FetchesPackages = step is PackagesStep,
            });
            parent = key;
        }
        return plans;
    }

    private static bool HasAptGet(KilnStore store, ImageState state)
    {
        var lowers = LayerCommit.LowerDirs(store, state);
        try
        {
            return SafePath.Lookup(lowers, SafePath.Resolve(lowers, "/usr/bin/apt-get")) is { Kind: ImageEntryKind.File };
        }
        catch (LayerException)
        {
            return false;
        }
    }

    /// <summary>The image with the box's layers on top: from the step cache, or made now (and cached).</summary>
    public static async Task<ImageState> AddAsync(KilnStore store, string image, Digest manifest, ImageState state, BuildOptions options,
        Action<string> report, CancellationToken ct)
    {
        // The box's steps read no build context: the runner is given an empty one.
        var context = new KilnFile { Path = "", ContextDir = store.Root, Images = [] };
        foreach (var step in Plan(manifest))
        {
            if (!options.NoCache && store.StepCache.TryGet(step.CacheKey) is { } cached)
            {
                state = cached;
                continue;
            }
            if (step.Step is PackagesStep && !HasAptGet(store, state))
            {
                throw ExportException.BadInput($"a Vagrant box of {image} gets openssh-server and sudo from apt, and the image has no /usr/bin/apt-get: "
                    + "build the box from a Debian-based image, or write a qcow2 output instead");
            }
            report($"adding to the box: {step.Description["vagrant: ".Length..]}");
            var runner = new StepRunner(store, options, context, _ => { });
            try
            {
                state = await runner.RunAsync(image + " (vagrant box)", step, state, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is BuildException or SandboxException)
            {
                throw ExportException.Failed($"adding what Vagrant needs to the box of {image}: {e.Message}", e);
            }
            await store.StepCache.PutAsync(step.CacheKey, state, ct).ConfigureAwait(false);
        }
        return state;
    }
}
