using Kiln.Build.Definition;
using Kiln.Build.Exporters.Disk;
using Kiln.Oci;

namespace Kiln.Build.Tests.Exporters.Disk;

/// <summary>The layers a Vagrant box adds to its image: keyed by the image, holding Vagrant's own public key.</summary>
public sealed class VagrantAccessTests
{
    private static readonly Digest A = Digest.Compute("a"u8.ToArray());
    private static readonly Digest B = Digest.Compute("b"u8.ToArray());

    [Fact]
    public void The_box_steps_are_keyed_by_the_image_and_chained()
    {
        var a = VagrantAccess.Plan(A);
        Assert.Equal(a.Select(s => s.CacheKey), VagrantAccess.Plan(A).Select(s => s.CacheKey));
        Assert.Equal(2, a.Count);
        Assert.IsType<PackagesStep>(a[0].Step);
        Assert.IsType<RunStep>(a[1].Step);
        Assert.True(a[0].FetchesPackages);
        Assert.Equal(["openssh-server", "sudo"], ((PackagesStep)a[0].Step).Packages);
        // Another image: other keys for both steps, so no box takes another image's layers.
        Assert.Empty(a.Select(s => s.CacheKey).Intersect(VagrantAccess.Plan(B).Select(s => s.CacheKey)));
        Assert.Equal(Kiln.Build.Planning.Planner.StepKey(a[0].CacheKey, a[1].Canonical, []), a[1].CacheKey);
    }

    [Fact]
    public void The_key_is_the_one_debians_vagrant_ships()
    {
        var shipped = Directory.GetFiles("/usr/share/rubygems-integration/all/gems", "vagrant.pub", SearchOption.AllDirectories);
        Assert.NotEmpty(shipped); // scripts/setup.sh test installs vagrant
        Assert.All(shipped, f => Assert.Equal(VagrantAccess.InsecurePublicKey, File.ReadAllText(f).Trim()));
    }

    [Fact]
    public void The_script_writes_the_key_and_a_sudoers_entry_and_leaves_no_host_keys()
    {
        var script = VagrantAccess.Script;
        Assert.Contains("'" + VagrantAccess.InsecurePublicKey + "' > \"$home/.ssh/authorized_keys\"", script);
        Assert.Contains("'vagrant ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/vagrant", script);
        Assert.Contains("visudo -cqf /etc/sudoers.d/vagrant", script);
        Assert.Contains("rm -f /etc/ssh/ssh_host_*", script);
        Assert.StartsWith("set -e\n", script);
    }
}
