using System.Text.Json;

namespace Kiln.Cli.Tests;

/// <summary>examples/web's `server` box: what Vagrant needs to reach the guest is in the box's disk and nowhere
/// else, and Debian's vagrant adds the box.</summary>
[Collection(ExampleWebCollection.Name)]
[Trait("Tier", "Slow")]
public sealed class VagrantBoxTests
{
    private const string InsecureKeyStart = "ssh-rsa AAAAB3NzaC1yc2EAAAABIwAAAQEA6NF8iallvQVp22WDkTkyrtvp9eWW6A8YVr+kz4TjGYe7gHzIw";

    private readonly ExampleWebFixture _web;

    public VagrantBoxTests(ExampleWebFixture web)
    {
        _web = web;
        Assert.True(web.Cold.ExitCode == 0, "cold build of examples/web failed:\n" + web.Cold.All);
        Assert.True(web.BoxExport.ExitCode == 0, "kiln export server --format vagrant failed:\n" + web.BoxExport.All);
    }

    private string Box => _web.ServerBox;

    private string ColdDigest(string image)
    {
        using var doc = JsonDocument.Parse(_web.Cold.Stdout);
        return doc.RootElement.GetProperty("images").EnumerateArray().First(i => i.GetProperty("name").GetString() == image).GetProperty("digest").GetString()!;
    }

    [Fact]
    public void The_box_has_sshd_the_vagrant_user_its_key_and_sudo_and_the_image_has_none_of_them()
    {
        using var tmp = new TempDir("kiln-box");
        Assert.Equal(0, KilnProcess.Tool("tar", "-xf", Box, "-C", tmp.Path).ExitCode);
        var raw = DiskFiles.ToRaw(tmp.Sub("box.img"), tmp, "box.raw");
        DiskFiles.AssertRootFsClean(raw);
        var tree = TreeListing.OfDiskRoot(raw);
        var root = $"{raw}?offset={DiskFiles.RootPartitionOffset(raw)}";

        var passwd = Cat(root, "/etc/passwd").Split('\n').Single(l => l.StartsWith("vagrant:", StringComparison.Ordinal)).Split(':');
        var (uid, gid, home) = (passwd[2], passwd[3], passwd[5]);
        Assert.Equal("/home/vagrant", home);
        Assert.Contains(tree, l => l.StartsWith("usr/sbin/sshd\tf\t755\t0\t0\t", StringComparison.Ordinal));
        Assert.Contains(tree, l => l.StartsWith("usr/bin/sudo\tf\t4755\t0\t0\t", StringComparison.Ordinal));
        Assert.Contains(tree, l => l.StartsWith($"home/vagrant/.ssh\td\t700\t{uid}\t{gid}", StringComparison.Ordinal));
        Assert.Contains(tree, l => l.StartsWith($"home/vagrant/.ssh/authorized_keys\tf\t600\t{uid}\t{gid}\t", StringComparison.Ordinal));
        Assert.StartsWith(InsecureKeyStart, Cat(root, "/home/vagrant/.ssh/authorized_keys"), StringComparison.Ordinal);
        Assert.Contains(tree, l => l.StartsWith("etc/sudoers.d/vagrant\tf\t440\t0\t0\t", StringComparison.Ordinal));
        Assert.Equal("vagrant ALL=(ALL) NOPASSWD: ALL\n", Cat(root, "/etc/sudoers.d/vagrant"));
        // sshd is started at boot, and each machine makes its own host keys there: the box carries none.
        Assert.Contains(tree, l => l.StartsWith("etc/systemd/system/multi-user.target.wants/ssh.service\tl\t", StringComparison.Ordinal));
        Assert.Contains(tree, l => l.StartsWith("etc/systemd/system/ssh.service.wants/kiln-ssh-host-keys.service\tl\t", StringComparison.Ordinal));
        Assert.DoesNotContain(tree, l => l.StartsWith("etc/ssh/ssh_host_", StringComparison.Ordinal));

        // The image, and so its qcow2 (whose tree the image's is, see ServerDiskTests), has none of it, and writing the
        // box left the image's name where it was.
        Assert.Equal(ColdDigest("server"), _web.ServerAfterBoxExport);
        var image = TreeListing.OfManifest(_web.Store.Path, ColdDigest("server"));
        Assert.DoesNotContain(image, l => l.StartsWith("usr/sbin/sshd\t", StringComparison.Ordinal)
            || l.StartsWith("usr/bin/sudo\t", StringComparison.Ordinal)
            || l.StartsWith("home/vagrant", StringComparison.Ordinal)
            || l.StartsWith("etc/sudoers.d/vagrant\t", StringComparison.Ordinal));
        var imagePasswd = TreeListing.OfManifest(_web.Store.Path, ColdDigest("server")).Single(l => l.StartsWith("etc/passwd\t", StringComparison.Ordinal));
        Assert.NotEqual(tree.Single(l => l.StartsWith("etc/passwd\t", StringComparison.Ordinal)), imagePasswd);
        // The box is the image with these on top: the image's site and kernel are there as they are in the image.
        var site = image.Where(l => l.StartsWith("var/www/", StringComparison.Ordinal) || l.StartsWith("boot/", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(site);
        Assert.All(site, l => Assert.Contains(l, tree));
    }

    [Fact]
    public void Vagrant_box_add_accepts_the_box()
    {
        // A Vagrant home of its own: the box is added there and goes with it.
        using var home = new TempDir("kiln-vagrant-home");
        var psi = new System.Diagnostics.ProcessStartInfo("vagrant")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = home.Path,
        };
        psi.Environment["VAGRANT_HOME"] = home.Sub("vagrant.d");
        psi.Environment["VAGRANT_CHECKPOINT_DISABLE"] = "1";
        foreach (var a in new[] { "box", "add", "--name", "kiln-test/server", Box })
        {
            psi.ArgumentList.Add(a);
        }
        var add = KilnProcess.Run(psi, TimeSpan.FromMinutes(5));
        Assert.True(add.ExitCode == 0, add.All);
        Assert.Contains("Successfully added box 'kiln-test/server' (v0) for 'libvirt'!", add.Stdout);
        var boxDir = Path.Combine(home.Sub("vagrant.d"), "boxes", "kiln-test-VAGRANTSLASH-server", "0", "libvirt");
        Assert.True(File.Exists(Path.Combine(boxDir, "box.img")), "the box's disk is where vagrant-libvirt looks for it");
    }

    private static string Cat(string root, string path)
    {
        var r = KilnProcess.Tool("debugfs", "-R", "cat " + path, root);
        Assert.True(r.ExitCode == 0 && r.Stdout.Length > 0, $"debugfs cat {path}: " + r.All);
        return r.Stdout;
    }
}
