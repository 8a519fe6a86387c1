using Kiln.Build.Layers;
using Kiln.Build.Native;

namespace Kiln.Build.Exporters.Disk;

/// <summary>One entry of an image's merged filesystem: the topmost layer's entry at the path and, for a directory,
/// the host dirs (topmost first) whose entries merge into it — the way overlayfs combines snapshot dirs.</summary>
internal sealed record MergedNode(string ImagePath, string HostPath, FileStatus Status, IReadOnlyList<string> DirHosts)
{
    public string Name => ImagePath == "/" ? "" : ImagePath[(ImagePath.LastIndexOf('/') + 1)..];

    /// <summary>Extended attributes as the mounted overlay shows them (overlay's own trusted.overlay.* are hidden).</summary>
    public IReadOnlyList<string> XattrNames() =>
        LibC.ListXattrs(HostPath).Where(n => !n.StartsWith("trusted.overlay.", StringComparison.Ordinal)).ToList();
}

/// <summary>Reads an image's merged filesystem straight from its layer snapshots (no mount): whiteouts hide lower
/// entries, opaque dirs hide lower dirs, an upper non-dir hides a lower dir and the other way round. Paths are
/// image paths ("/etc/hosts"); symbolic links are never followed (use <see cref="SafePath"/> for that).</summary>
internal sealed class MergedTree
{
    private readonly string[] _layers;

    public MergedTree(IReadOnlyList<string> layersTopFirst)
    {
        _layers = layersTopFirst.Select(l => Path.TrimEndingDirectorySeparator(Path.GetFullPath(l))).ToArray();
        var hosts = _layers.Where(l => LibC.TryLstat(l) is { IsDirectory: true }).ToList();
        if (hosts.Count == 0)
        {
            throw ExportException.Failed("the image has no layer snapshots to read (run `kiln verify`)");
        }
        Root = new MergedNode("/", hosts[0], LibC.Lstat(hosts[0]), hosts);
    }

    public IReadOnlyList<string> Layers => _layers;

    public MergedNode Root { get; }

    /// <summary>The entry at a normalised absolute image path, or null when the merged view has none.</summary>
    public MergedNode? Lookup(string imagePath)
    {
        if (imagePath == "/")
        {
            return Root;
        }
        var node = Root;
        foreach (var name in imagePath[1..].Split('/'))
        {
            if (node.DirHosts.Count == 0 || Child(node, name) is not { } child)
            {
                return null;
            }
            node = child;
        }
        return node;
    }

    /// <summary>The entry <paramref name="name"/> of directory <paramref name="dir"/>, or null.</summary>
    public static MergedNode? Child(MergedNode dir, string name)
    {
        MergedNode? found = null;
        var dirs = new List<string>();
        string imagePath = dir.ImagePath == "/" ? "/" + name : dir.ImagePath + "/" + name;
        foreach (var parent in dir.DirHosts)
        {
            var host = parent + "/" + name;
            if (LibC.TryLstat(host) is not { } st)
            {
                continue;
            }
            if (found is null)
            {
                if (st.IsWhiteout)
                {
                    return null;
                }
                if (!st.IsDirectory)
                {
                    return new MergedNode(imagePath, host, st, []);
                }
                found = new MergedNode(imagePath, host, st, dirs);
            }
            else if (st.IsWhiteout || !st.IsDirectory)
            {
                break;
            }
            dirs.Add(host);
            if (SafePath.IsOpaque(host))
            {
                break;
            }
        }
        return found;
    }

    /// <summary>The entries of a directory, sorted by name (ordinal).</summary>
    public static IReadOnlyList<MergedNode> Children(MergedNode dir)
    {
        var names = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var host in dir.DirHosts)
        {
            foreach (var entry in Directory.EnumerateFileSystemEntries(host))
            {
                names.Add(Path.GetFileName(entry));
            }
        }
        var list = new List<MergedNode>(names.Count);
        foreach (var name in names)
        {
            if (Child(dir, name) is { } child)
            {
                list.Add(child);
            }
        }
        return list;
    }

    /// <summary>Every entry under <paramref name="dir"/> (not itself), parents before children.</summary>
    public static IEnumerable<MergedNode> Walk(MergedNode dir, CancellationToken ct)
    {
        var pending = new Stack<MergedNode>();
        pending.Push(dir);
        while (pending.Count > 0)
        {
            ct.ThrowIfCancellationRequested();
            var current = pending.Pop();
            var children = Children(current);
            for (int i = children.Count - 1; i >= 0; i--)
            {
                yield return children[i];
                if (children[i].DirHosts.Count > 0)
                {
                    pending.Push(children[i]);
                }
            }
        }
    }
}
