using System.Globalization;

namespace Kiln.Build.Tests.Exporters.Disk;

/// <summary>File trees as sorted lines "path type mode uid gid mtime link-target sha256", read from an image's
/// snapshots (a read-only overlay) and from a raw disk's ext4 root (loop-mounted read-only), each inside a private
/// mount namespace so no mount outlives the listing.</summary>
internal static class DiskTree
{
    private const string List = """
list() {
  cd "$1" || exit 1
  find . -mindepth 1 \( -path ./lost+found -prune \) -o -printf '%P\t%y\t%m\t%U\t%G\tt%T@\t%l\n' | sed 's/\tt\([0-9]*\)\.[0-9]*\t/\tt\1\t/'
  echo '--- hashes'
  find . -mindepth 1 -path ./lost+found -prune -o -type f -print0 | xargs -0 -r sha256sum
}
""";

    public static IReadOnlyList<string> OfImage(IReadOnlyList<string> snapshotsTopFirst)
    {
        var mnt = Directory.CreateTempSubdirectory("kiln-img-").FullName;
        var empty = Directory.CreateTempSubdirectory("kiln-empty-").FullName;
        try
        {
            var script = List + "\nmount -t overlay kiln-test -o \"ro,lowerdir=$2\" \"$1\" || exit 1\nlist \"$1\"\n";
            return Parse(Run(script, mnt, string.Join(':', snapshotsTopFirst.Append(empty))));
        }
        finally
        {
            Directory.Delete(mnt);
            Directory.Delete(empty);
        }
    }

    public static IReadOnlyList<string> OfDisk(string rawDisk, long rootOffset)
    {
        var mnt = Directory.CreateTempSubdirectory("kiln-disk-").FullName;
        try
        {
            var script = List + "\nmount -t ext4 -o \"ro,loop,offset=$2\" \"$3\" \"$1\" || exit 1\nlist \"$1\"\n";
            return Parse(Run(script, mnt, rootOffset.ToString(CultureInfo.InvariantCulture), rawDisk));
        }
        finally
        {
            Directory.Delete(mnt);
        }
    }

    public static void AssertSame(IReadOnlyList<string> expected, IReadOnlyList<string> actual) => Kiln.Tests.Shared.TreeLines.AssertSame(expected, actual);

    private static string Run(string script, params string[] args)
    {
        var (code, output) = DiskTestImage.Run("unshare", ["--mount", "--propagation", "private", "sh", "-c", script, "list", .. args]);
        Assert.True(code == 0, output);
        return output;
    }

    private static IReadOnlyList<string> Parse(string output) => Kiln.Tests.Shared.TreeLines.Parse(output);
}
