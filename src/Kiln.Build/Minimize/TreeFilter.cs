using Kiln.Build.Exporters.Disk;
using Kiln.Build.Native;

namespace Kiln.Build.Minimize;

/// <summary>Writes the kept part of an image's merged filesystem into an empty directory: every directory (made anew,
/// with its owner, mode, extended attributes and time), and each kept non-directory as a hard link to its snapshot
/// file (snapshots are never written, and a link costs no copy).</summary>
internal static class TreeFilter
{
    internal sealed record Entry(string Path, long Bytes);

    public static (List<Entry> Kept, List<Entry> Dropped) Write(MergedTree tree, string destination, Func<string, FileStatus, bool> keep,
        Func<string, bool> pruneWhenEmpty, CancellationToken ct)
    {
        var kept = new List<Entry>();
        var dropped = new List<Entry>();
        var dirs = new List<MergedNode> { tree.Root };
        foreach (var node in MergedTree.Walk(tree.Root, ct))
        {
            var target = destination + node.ImagePath;
            if (node.Status.IsDirectory)
            {
                Directory.CreateDirectory(target);
                dirs.Add(node);
                continue;
            }
            if (node.Status.IsSocket)
            {
                continue;
            }
            var entry = new Entry(node.ImagePath, node.Status.IsRegularFile ? node.Status.Size : 0);
            if (!keep(node.ImagePath, node.Status))
            {
                dropped.Add(entry);
                continue;
            }
            kept.Add(entry);
            LibC.Link(node.HostPath, target);
        }
        // Deepest first: a directory's time is set after its entries are made, and an emptied one goes before its parent is looked at.
        foreach (var dir in dirs.OrderByDescending(d => d.ImagePath.Count(c => c == '/')).ThenByDescending(d => d.ImagePath, StringComparer.Ordinal))
        {
            var target = dir.ImagePath == "/" ? destination : destination + dir.ImagePath;
            if (dir.ImagePath != "/" && pruneWhenEmpty(dir.ImagePath) && !Directory.EnumerateFileSystemEntries(target).Any())
            {
                Directory.Delete(target);
                continue;
            }
            foreach (var name in dir.XattrNames())
            {
                if (LibC.GetXattr(dir.HostPath, name) is { } value)
                {
                    LibC.SetXattr(target, name, value);
                }
            }
            LibC.Lchown(target, dir.Status.Uid, dir.Status.Gid);
            LibC.Chmod(target, dir.Status.Permissions);
            LibC.SetTimesNoFollow(target, dir.Status.MTimeSeconds, dir.Status.MTimeNanoseconds);
        }
        return (kept, dropped);
    }
}
