using System.Diagnostics;
using Kiln.Build.Layers;
using Kiln.Build.Native;
using Kiln.Build.Store;
using Kiln.Build.Tests.Store;
using Kiln.Oci;

namespace Kiln.Build.Tests.Exporters.Disk;

/// <summary>Tiny bootable-looking images for disk tests: busybox as /sbin/init, a fake kernel and initrd in /boot
/// (enough for layout, fsck, tree and incremental checks; nothing here boots). Layers are packed for real
/// (LayerPacker) and their dirs kept as snapshots, as a build does.</summary>
internal sealed class DiskTestImage : IDisposable
{
    public TestStore Test { get; } = new();
    public KilnStore Store => Test.Store;
    public ImageState State { get; set; } = TestStore.Empty;

    /// <summary>A fresh output folder (outside the store) for exports.</summary>
    public string OutDir { get; } = Directory.CreateTempSubdirectory("kiln-disk-out-").FullName;

    public async Task AddLayerAsync(Action<string> fill)
    {
        var dir = Store.CreateTempDir("test-layer");
        fill(dir);
        PackedLayer packed;
        Descriptor blob;
        using (var writer = Store.Content.CreateBlobWriter())
        {
            packed = await LayerPacker.PackAsync(dir, writer, Compression.Gzip, DateTimeOffset.UnixEpoch, null);
            blob = await writer.CommitAsync(packed.MediaType, packed.Digest);
        }
        Store.Snapshots.CommitSnapshot(dir, packed.DiffId);
        State = State with
        {
            Layers = [.. State.Layers, blob],
            Config = State.Config with { RootFs = new RootFs { DiffIds = [.. State.Config.RootFs.DiffIds, packed.DiffId] } },
        };
    }

    /// <summary>The base layer: busybox, /sbin/init, /boot with kernel VERSION (unless <paramref name="kernel"/> is
    /// false), a few owners, modes, links and an xattr.</summary>
    public Task AddBaseAsync(bool kernel = true, bool initrd = true, bool init = true) => AddLayerAsync(root =>
    {
        Mk(root, "bin");
        File.Copy("/bin/busybox", Path.Combine(root, "bin/busybox"));
        File.CreateSymbolicLink(Path.Combine(root, "bin/sh"), "busybox");
        Mk(root, "sbin");
        if (init)
        {
            File.CreateSymbolicLink(Path.Combine(root, "sbin/init"), "../bin/busybox");
        }
        Mk(root, "boot");
        if (kernel)
        {
            File.WriteAllBytes(Path.Combine(root, "boot/vmlinuz-6.1.0-9-amd64"), Bytes(300_000, 1));
            File.WriteAllBytes(Path.Combine(root, "boot/vmlinuz-6.1.0-27-amd64"), Bytes(310_000, 2));
            if (initrd)
            {
                File.WriteAllBytes(Path.Combine(root, "boot/initrd.img-6.1.0-27-amd64"), Bytes(200_000, 3));
            }
        }
        foreach (var d in new[] { "etc", "tmp", "proc", "sys", "dev", "var/log", "srv/app", "home/user" })
        {
            Mk(root, d);
        }
        LibC.Chmod(Path.Combine(root, "tmp"), 0x3FF); // 1777
        File.WriteAllText(Path.Combine(root, "etc/hostname"), "tiny\n");
        File.WriteAllText(Path.Combine(root, "etc/motd"), "old motd\n");
        File.WriteAllText(Path.Combine(root, "srv/app/index.html"), "<h1>v1</h1>\n");
        File.WriteAllText(Path.Combine(root, "srv/app/old.js"), "old();\n");
        Mk(root, "srv/app/assets");
        File.WriteAllText(Path.Combine(root, "srv/app/assets/a.css"), "a{}\n");
        File.WriteAllText(Path.Combine(root, "home/user/secret"), "s\n");
        LibC.Chmod(Path.Combine(root, "home/user/secret"), Convert.ToUInt32("600", 8));
        LibC.Lchown(Path.Combine(root, "home/user/secret"), 1000, 1000);
        LibC.Lchown(Path.Combine(root, "home/user"), 1000, 1000);
        LibC.Chmod(Path.Combine(root, "home/user"), Convert.ToUInt32("700", 8));
        File.CreateSymbolicLink(Path.Combine(root, "etc/long-link"), "/usr/share/some/very/long/path/that/is/longer/than/sixty/characters/for/a/slow/symlink");
        File.WriteAllText(Path.Combine(root, "etc/cap"), "x\n");
        LibC.SetXattr(Path.Combine(root, "etc/cap"), "user.kiln-test", "value"u8);
        // A file big enough to need more than a few blocks.
        File.WriteAllBytes(Path.Combine(root, "srv/app/blob.bin"), Bytes(3_000_000, 4));
    });

    public async Task<Descriptor> TagAsync(string name)
    {
        var manifest = await Store.Content.WriteImageAsync(State);
        await Store.Names.TagAsync(name, manifest);
        return manifest;
    }

    public IReadOnlyList<string> SnapshotsTopFirst => [.. State.Config.RootFs.DiffIds.Reverse().Select(Store.Snapshots.SnapshotPath)];

    public static void Mk(string root, string relative) => Directory.CreateDirectory(Path.Combine(root, relative));

    public static byte[] Bytes(int count, int seed)
    {
        var b = new byte[count];
        new Random(seed).NextBytes(b);
        return b;
    }

    /// <summary>Runs a tool and returns its exit code and output (both streams).</summary>
    public static (int ExitCode, string Output) Run(string file, params string[] args) => TestStore.Run(file, args);

    public void Dispose()
    {
        Test.Dispose();
        Run("rm", "-rf", "--one-file-system", OutDir);
    }
}
