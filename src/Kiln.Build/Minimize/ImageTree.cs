using Kiln.Build.Exporters.Disk;
using Kiln.Build.Native;

namespace Kiln.Build.Minimize;

/// <summary>An image's filesystem read by image path (<c>/usr/bin/ls</c>), symlinks never followed: the merged view of
/// its layer snapshots, or a plain directory standing for a root (tests).</summary>
public abstract class ImageTree
{
    /// <summary>The entry at a normalised absolute image path whose parents are no symlinks, or null.</summary>
    public abstract (string HostPath, FileStatus Status)? Lookup(string path);

    /// <summary>The names in a directory (its parents no symlinks).</summary>
    public abstract IEnumerable<string> List(string dir);

    public static ImageTree OfDirectory(string root) => new DirectoryTree(Path.GetFullPath(root));

    internal static ImageTree OfLayers(IReadOnlyList<string> layersTopFirst) => new LayerTree(new MergedTree(layersTopFirst));

    private sealed class DirectoryTree(string root) : ImageTree
    {
        public override (string HostPath, FileStatus Status)? Lookup(string path)
        {
            var host = path == "/" ? root : root + path;
            return LibC.TryLstat(host) is { } st ? (host, st) : null;
        }

        public override IEnumerable<string> List(string dir) =>
            Lookup(dir) is { Status.IsDirectory: true } d ? Directory.EnumerateFileSystemEntries(d.HostPath).Select(Path.GetFileName).OfType<string>() : [];
    }

    private sealed class LayerTree(MergedTree tree) : ImageTree
    {
        public override (string HostPath, FileStatus Status)? Lookup(string path) =>
            tree.Lookup(path) is { } node ? (node.HostPath, node.Status) : null;

        public override IEnumerable<string> List(string dir) =>
            tree.Lookup(dir) is { DirHosts.Count: > 0 } node ? MergedTree.Children(node).Select(c => c.Name) : [];
    }
}
