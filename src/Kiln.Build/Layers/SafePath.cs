using Kiln.Build.Native;

namespace Kiln.Build.Layers;

public enum ImageEntryKind { File, Directory, Symlink, CharDevice, BlockDevice, Fifo, Socket }

/// <summary>The topmost entry at an image path in a layer stack: where it lives on the host and its metadata.
/// <see cref="Mode"/> holds the permission bits including setuid, setgid and sticky.</summary>
public sealed record ImageEntry(string ImagePath, string HostPath, int LayerIndex, ImageEntryKind Kind,
    uint Mode, uint Uid, uint Gid);

/// <summary>The one door into a root filesystem made of stacked overlay-form layer dirs: resolves image paths the way
/// the kernel would with the stack mounted at <c>/</c>, never leaving it and never following a host symlink.</summary>
public static class SafePath
{
    private const int MaxLinks = 40;

    /// <summary>Resolves the absolute image path <paramref name="path"/> through the stack (index 0 topmost) to a
    /// normalised absolute image path without symlinks (the last component is kept as is when
    /// <paramref name="followLast"/> is false). Missing components are kept as they are.</summary>
    public static string Resolve(IReadOnlyList<string> layersTopFirst, string path, bool followLast = true)
    {
        layersTopFirst = Normalise(layersTopFirst);
        if (!path.StartsWith('/'))
        {
            throw LayerException.BadPath(path, "an image path must be absolute");
        }
        if (path.Contains('\0'))
        {
            throw LayerException.BadPath(path, "contains a NUL character");
        }
        var remaining = new Stack<string>();
        PushComponents(remaining, path);
        var names = new List<string>();
        var layersOfDir = new List<List<int>> { RootLayers(layersTopFirst) };
        int links = 0;
        while (remaining.Count > 0)
        {
            string name = remaining.Pop();
            if (name is "" or ".")
            {
                continue;
            }
            if (name == "..")
            {
                if (names.Count > 0)
                {
                    names.RemoveAt(names.Count - 1);
                    layersOfDir.RemoveAt(layersOfDir.Count - 1);
                }
                continue;
            }
            bool isLast = remaining.Count == 0;
            string imagePath = Combine(names, name);
            var (entry, childLayers) = LookupChild(layersTopFirst, layersOfDir[^1], imagePath);
            if (entry is { Kind: ImageEntryKind.Symlink } && (!isLast || followLast))
            {
                if (++links > MaxLinks)
                {
                    throw LayerException.BadPath(path, $"more than {MaxLinks} symbolic links (a loop?)");
                }
                string target = new FileInfo(entry.HostPath).LinkTarget ?? "";
                if (target.StartsWith('/'))
                {
                    names.Clear();
                    layersOfDir.RemoveRange(1, layersOfDir.Count - 1);
                }
                PushComponents(remaining, target);
                continue;
            }
            names.Add(name);
            layersOfDir.Add(childLayers);
        }
        return names.Count == 0 ? "/" : "/" + string.Join('/', names);
    }

    /// <summary>Maps a normalised absolute image path (as <see cref="Resolve"/> returns) under
    /// <paramref name="hostRoot"/>, refusing anything that is not normalised or would leave it.</summary>
    public static string Join(string hostRoot, string normalisedImagePath)
    {
        string root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(hostRoot));
        if (normalisedImagePath == "/")
        {
            return root;
        }
        if (!normalisedImagePath.StartsWith('/') || normalisedImagePath.Contains('\0'))
        {
            throw LayerException.BadPath(normalisedImagePath, "not a normalised absolute image path");
        }
        foreach (string part in normalisedImagePath[1..].Split('/'))
        {
            if (part is "" or "." or "..")
            {
                throw LayerException.BadPath(normalisedImagePath, "not a normalised absolute image path");
            }
        }
        string prefix = root.EndsWith('/') ? root : root + "/";
        string joined = prefix + normalisedImagePath[1..];
        if (!Path.GetFullPath(joined).StartsWith(prefix, StringComparison.Ordinal))
        {
            throw LayerException.BadPath(normalisedImagePath, $"leaves '{root}'");
        }
        return joined;
    }

    /// <summary>The topmost visible entry at a normalised image path (no symlink is followed), or null when the
    /// path does not exist in the merged view (absent, whited out, hidden by an opaque dir, or under a non-dir).</summary>
    public static ImageEntry? Lookup(IReadOnlyList<string> layersTopFirst, string normalisedImagePath)
    {
        layersTopFirst = Normalise(layersTopFirst);
        if (normalisedImagePath == "/")
        {
            for (int i = 0; i < layersTopFirst.Count; i++)
            {
                if (LibC.TryLstat(layersTopFirst[i]) is { IsDirectory: true } st)
                {
                    return ToEntry("/", layersTopFirst[i], i, st);
                }
            }
            return null;
        }
        Join("/", normalisedImagePath); // validates the form
        var layers = RootLayers(layersTopFirst);
        string current = "";
        ImageEntry? entry = null;
        foreach (string part in normalisedImagePath[1..].Split('/'))
        {
            current += "/" + part;
            (entry, layers) = LookupChild(layersTopFirst, layers, current);
            if (entry is null)
            {
                return null;
            }
        }
        return entry;
    }

    /// <summary>The visible entries of the directory at a normalised image path (no symlink is followed), sorted by
    /// name; empty when there is no directory there.</summary>
    public static IReadOnlyList<ImageEntry> List(IReadOnlyList<string> layersTopFirst, string normalisedImagePath)
    {
        layersTopFirst = Normalise(layersTopFirst);
        Join("/", normalisedImagePath); // validates the form
        var layers = RootLayers(layersTopFirst);
        string dir = "";
        if (normalisedImagePath != "/")
        {
            foreach (string part in normalisedImagePath[1..].Split('/'))
            {
                dir += "/" + part;
                (var entry, layers) = LookupChild(layersTopFirst, layers, dir);
                if (entry is not { Kind: ImageEntryKind.Directory })
                {
                    return [];
                }
            }
        }
        else
        {
            layers = [.. layers.Where(l => LibC.TryLstat(layersTopFirst[l]) is { IsDirectory: true })];
            layers = [.. layers.TakeWhile((l, i) => i == 0 || !IsOpaque(layersTopFirst[layers[i - 1]]))];
        }
        var names = new SortedSet<string>(StringComparer.Ordinal);
        foreach (int layer in layers)
        {
            foreach (var child in Directory.EnumerateFileSystemEntries(layersTopFirst[layer] + dir))
            {
                names.Add(Path.GetFileName(child));
            }
        }
        var entries = new List<ImageEntry>();
        foreach (var name in names)
        {
            if (LookupChild(layersTopFirst, layers, dir + "/" + name).Entry is { } entry)
            {
                entries.Add(entry);
            }
        }
        return entries;
    }

    private static string[] Normalise(IReadOnlyList<string> layersTopFirst)
    {
        ArgumentNullException.ThrowIfNull(layersTopFirst);
        return layersTopFirst.Select(l => Path.TrimEndingDirectorySeparator(Path.GetFullPath(l))).ToArray();
    }

    private static List<int> RootLayers(IReadOnlyList<string> layersTopFirst) =>
        Enumerable.Range(0, layersTopFirst.Count).ToList();

    // Finds the topmost entry for imagePath among the layers whose parent dir is part of the merged parent, and
    // the layers whose dirs merge into it (if it is a directory), the way overlayfs does.
    private static (ImageEntry? Entry, List<int> ChildLayers) LookupChild(IReadOnlyList<string> layersTopFirst,
        List<int> parentLayers, string imagePath)
    {
        ImageEntry? found = null;
        var childLayers = new List<int>();
        foreach (int layer in parentLayers)
        {
            string host = layersTopFirst[layer] + imagePath;
            if (LibC.TryLstat(host) is not { } st)
            {
                continue;
            }
            if (found is null)
            {
                if (st.IsWhiteout)
                {
                    return (null, childLayers);
                }
                found = ToEntry(imagePath, host, layer, st);
                if (!st.IsDirectory)
                {
                    return (found, childLayers);
                }
            }
            else if (st.IsWhiteout || !st.IsDirectory)
            {
                break;
            }
            childLayers.Add(layer);
            if (IsOpaque(host))
            {
                break;
            }
        }
        return (found, childLayers);
    }

    internal static bool IsOpaque(string hostDir) =>
        LibC.GetXattr(hostDir, LayerPacker.OpaqueXattr) is { } v && v.AsSpan().SequenceEqual("y"u8);

    private static ImageEntry ToEntry(string imagePath, string host, int layer, FileStatus st) =>
        new(imagePath, host, layer, st.FileType switch
        {
            LibC.S_IFDIR => ImageEntryKind.Directory,
            LibC.S_IFLNK => ImageEntryKind.Symlink,
            LibC.S_IFCHR => ImageEntryKind.CharDevice,
            LibC.S_IFBLK => ImageEntryKind.BlockDevice,
            LibC.S_IFIFO => ImageEntryKind.Fifo,
            LibC.S_IFSOCK => ImageEntryKind.Socket,
            _ => ImageEntryKind.File,
        }, st.Permissions, st.Uid, st.Gid);

    private static string Combine(List<string> names, string name) =>
        names.Count == 0 ? "/" + name : "/" + string.Join('/', names) + "/" + name;

    private static void PushComponents(Stack<string> remaining, string path)
    {
        string[] parts = path.Split('/');
        for (int i = parts.Length - 1; i >= 0; i--)
        {
            remaining.Push(parts[i]);
        }
    }
}
