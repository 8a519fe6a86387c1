using System.Text.Json;

namespace Kiln.Cli.Tests;

/// <summary>A file tree as sorted lines "path\ttype\tmode\tuid\tgid\tlink target\tsha256", for comparing
/// what different tools unpack.</summary>
public static class TreeListing
{
    private const string Script = """
cd "$1" || exit 1
find . -mindepth 1 -printf '%P\t%y\t%m\t%U\t%G\t%l\n'
echo '--- hashes'
find . -mindepth 1 -type f -print0 | xargs -0 -r sha256sum
""";

    public static IReadOnlyList<string> Of(string dir) => Parse(Run(["sh", "-c", Script, "list", dir]));

    /// <summary>The merged tree of a Kiln image, from its snapshots in the store (an overlay mounted in a
    /// private mount namespace, so nothing outlives the listing).</summary>
    public static IReadOnlyList<string> OfImage(string store, string name) => OfManifest(store, StoreReader.ManifestDigest(store, name));

    /// <summary>The merged tree of the image with manifest <paramref name="manifestDigest"/>, tagged or not.</summary>
    public static IReadOnlyList<string> OfManifest(string store, string manifestDigest)
    {
        using var manifest = JsonDocument.Parse(File.ReadAllText(StoreReader.BlobPath(store, manifestDigest)));
        var configDigest = manifest.RootElement.GetProperty("config").GetProperty("digest").GetString()!;
        using var config = JsonDocument.Parse(File.ReadAllText(StoreReader.BlobPath(store, configDigest)));
        var lowers = config.RootElement.GetProperty("rootfs").GetProperty("diff_ids").EnumerateArray()
            .Select(d => Path.Combine(store, "kiln", "snapshots", d.GetString()!["sha256:".Length..])).Reverse().ToList();
        if (lowers.Count == 1)
        {
            return Of(lowers[0]);
        }
        using var mnt = new TempDir("kiln-merged");
        var script = "mount -t overlay kiln-test -o \"ro,lowerdir=$2\" \"$1\" || exit 1\n" + Script;
        return Parse(Run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "list", mnt.Path, string.Join(':', lowers)]));
    }

    /// <summary>The tree of the ext4 root partition (the second) of a raw disk, mounted read-only from a loop device in a
    /// private mount namespace (the loop device clears itself when the namespace goes). The filesystem's own
    /// top-level lost+found is left out: it is mkfs's, not the image's.</summary>
    public static IReadOnlyList<string> OfDiskRoot(string rawDisk)
    {
        var offset = DiskFiles.RootPartitionOffset(rawDisk);
        using var mnt = new TempDir("kiln-disk-root");
        var script = "mount -o ro,loop,offset=$3 \"$2\" \"$1\" || exit 1\n" + Script;
        var listing = Parse(Run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "list", mnt.Path, rawDisk, offset.ToString(System.Globalization.CultureInfo.InvariantCulture)]));
        return [.. listing.Where(l => !l.StartsWith("lost+found\t", StringComparison.Ordinal))];
    }

    public static void AssertSame(IReadOnlyList<string> expected, IReadOnlyList<string> actual) => Kiln.Tests.Shared.TreeLines.AssertSame(expected, actual);

    private static string Run(string[] argv)
    {
        var r = KilnProcess.Tool(argv[0], argv[1..]);
        Assert.True(r.ExitCode == 0, r.All);
        return r.Stdout;
    }

    private static IReadOnlyList<string> Parse(string output) => Kiln.Tests.Shared.TreeLines.Parse(output);
}
