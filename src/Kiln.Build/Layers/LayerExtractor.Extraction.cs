using System.Buffers;
using Kiln.Build.Native;

namespace Kiln.Build.Layers;

public static partial class LayerExtractor
{
    private sealed class Extraction(string root, TarStreamReader reader)
    {
        private readonly HashSet<string> _directories = new(StringComparer.Ordinal) { "" };
        private readonly HashSet<string> _nonDirectories = new(StringComparer.Ordinal);
        // Directory metadata is applied at the end; a later entry for the same directory replaces an earlier one.
        private readonly Dictionary<string, (string Host, TarEntry Entry)> _directoryMetadata = new(StringComparer.Ordinal);
        private readonly List<string> _directoryOrder = [];

        public void Apply(TarEntry entry)
        {
            var parts = SplitName(entry.Name, entry.Name);
            if (parts.Count == 0)
            {
                if (entry.Kind != TarKind.Directory)
                {
                    throw LayerException.BadEntry(entry.Name, $"a {entry.Kind} cannot stand for the layer root");
                }
                return; // the layer root ("./"): its metadata belongs to the image root, which a layer does not own
            }
            string baseName = parts[^1];
            var parentParts = parts.GetRange(0, parts.Count - 1);
            if (baseName.StartsWith(LayerPacker.WhiteoutPrefix, StringComparison.Ordinal))
            {
                ApplyWhiteout(entry.Name, parentParts, baseName);
                return;
            }
            string parentRel = EnsureParents(entry.Name, parentParts);
            string rel = parentRel.Length == 0 ? baseName : parentRel + "/" + baseName;
            string host = root + "/" + rel;
            var existing = LibC.TryLstat(host);

            if (entry.Kind == TarKind.Directory)
            {
                bool hidesLower = false;
                if (existing is { IsDirectory: false })
                {
                    // A whiteout of this layer meant "hide what lies below": the directory replacing it must too.
                    hidesLower = existing.Value.IsWhiteout;
                    File.Delete(host);
                    _nonDirectories.Remove(rel);
                    existing = null;
                }
                if (existing is null)
                {
                    Directory.CreateDirectory(host);
                }
                if (hidesLower)
                {
                    LibC.SetXattr(host, LayerPacker.OpaqueXattr, "y"u8);
                }
                _directories.Add(rel);
                LibC.Lchown(host, (uint)entry.Uid, (uint)entry.Gid);
                SetXattrs(host, entry);
                if (!_directoryMetadata.ContainsKey(rel))
                {
                    _directoryOrder.Add(rel);
                }
                _directoryMetadata[rel] = (host, entry);
                return;
            }

            if (existing is { IsDirectory: true })
            {
                // Last wins: the directory (made by this layer, the target started empty) goes with what it holds.
                RemoveTree(host);
                ForgetTree(rel);
            }
            else if (existing is not null)
            {
                File.Delete(host); // unlinks; never follows a symlink
            }

            switch (entry.Kind)
            {
                case TarKind.File:
                    WriteFile(host, entry);
                    break;
                case TarKind.Symlink:
                    if (entry.LinkName.Length == 0 || entry.LinkName.Contains('\0'))
                    {
                        throw LayerException.BadEntry(entry.Name, "symlink with an empty or invalid target");
                    }
                    File.CreateSymbolicLink(host, entry.LinkName);
                    break;
                case TarKind.HardLink:
                    var targetParts = SplitName(entry.LinkName, entry.Name);
                    string targetRel = string.Join('/', targetParts);
                    if (targetParts.Count == 0 || !_nonDirectories.Contains(targetRel))
                    {
                        throw LayerException.BadEntry(entry.Name,
                            $"hard link to '{entry.LinkName}', which is not a file extracted earlier from this layer");
                    }
                    LibC.Link(root + "/" + targetRel, host);
                    _nonDirectories.Add(rel);
                    return; // shares the target's inode and metadata
                case TarKind.CharDevice when entry.DevMajor == 0 && entry.DevMinor == 0:
                    throw LayerException.BadEntry(entry.Name,
                        "character device 0:0 is an overlay whiteout in disguise (in a snapshot it would hide this path in the layers "
                        + "below instead of being a device); a layer deletes files with '.wh.' entries");
                case TarKind.CharDevice:
                    LibC.Mknod(host, LibC.S_IFCHR | (entry.Mode & 0xFFF), entry.DevMajor, entry.DevMinor);
                    break;
                case TarKind.BlockDevice:
                    LibC.Mknod(host, LibC.S_IFBLK | (entry.Mode & 0xFFF), entry.DevMajor, entry.DevMinor);
                    break;
                case TarKind.Fifo:
                    LibC.Mknod(host, LibC.S_IFIFO | (entry.Mode & 0xFFF));
                    break;
                default:
                    throw LayerException.BadEntry(entry.Name, $"unsupported entry kind {entry.Kind}");
            }
            _nonDirectories.Add(rel);
            LibC.Lchown(host, (uint)entry.Uid, (uint)entry.Gid);
            if (entry.Kind != TarKind.Symlink)
            {
                LibC.Chmod(host, entry.Mode); // after chown, which clears setuid/setgid
            }
            SetXattrs(host, entry);
            LibC.SetTimesNoFollow(host, entry.MTime);
        }

        public void FinishDirectories()
        {
            // Children change a directory's mtime, so directories get theirs last, deepest first.
            for (int i = _directoryOrder.Count - 1; i >= 0; i--)
            {
                if (!_directoryMetadata.TryGetValue(_directoryOrder[i], out var meta))
                {
                    continue; // replaced by a non-directory later
                }
                var (host, entry) = meta;
                LibC.Chmod(host, entry.Mode);
                LibC.SetTimesNoFollow(host, entry.MTime);
            }
        }

        private void ApplyWhiteout(string name, List<string> parentParts, string baseName)
        {
            if (baseName == LayerPacker.OpaqueMarker)
            {
                string dirRel = EnsureParents(name, parentParts);
                LibC.SetXattr(dirRel.Length == 0 ? root : root + "/" + dirRel, LayerPacker.OpaqueXattr, "y"u8);
                return;
            }
            if (baseName.StartsWith(LayerPacker.WhiteoutPrefix + LayerPacker.WhiteoutPrefix, StringComparison.Ordinal))
            {
                return; // other AUFS meta entries (.wh..wh.plnk, .wh..wh.aufs) mean nothing to overlayfs
            }
            string hidden = baseName[LayerPacker.WhiteoutPrefix.Length..];
            if (hidden is "" or "." or "..")
            {
                throw LayerException.BadEntry(name, "invalid whiteout: it names no file");
            }
            string parentRel = EnsureParents(name, parentParts);
            string rel = parentRel.Length == 0 ? hidden : parentRel + "/" + hidden;
            string host = root + "/" + rel;
            var existing = LibC.TryLstat(host);
            if (existing is { IsDirectory: true })
            {
                // The layer's own directory stays; what lower layers hold there is hidden, as the whiteout asks.
                LibC.SetXattr(host, LayerPacker.OpaqueXattr, "y"u8);
                return;
            }
            if (existing is not null)
            {
                return; // a file of this same layer: it stays, and already hides whatever lies below
            }
            LibC.MknodWhiteout(host);
        }

        private void ForgetTree(string rel)
        {
            string prefix = rel + "/";
            _directories.RemoveWhere(d => d == rel || d.StartsWith(prefix, StringComparison.Ordinal));
            _nonDirectories.RemoveWhere(d => d.StartsWith(prefix, StringComparison.Ordinal));
            foreach (string d in _directoryMetadata.Keys.Where(d => d == rel || d.StartsWith(prefix, StringComparison.Ordinal)).ToList())
            {
                _directoryMetadata.Remove(d);
            }
        }

        /// <summary>Makes sure every parent is a real directory inside the root (creating missing ones 0755
        /// root:root), never passing through a symlink; returns the parent's relative path.</summary>
        private string EnsureParents(string entryName, List<string> parentParts)
        {
            string rel = "";
            foreach (string part in parentParts)
            {
                rel = rel.Length == 0 ? part : rel + "/" + part;
                if (_directories.Contains(rel))
                {
                    continue;
                }
                string host = root + "/" + rel;
                var st = LibC.TryLstat(host);
                if (st is null)
                {
                    Directory.CreateDirectory(host);
                    LibC.Chmod(host, 0x1ED); // 0755
                }
                else if (st.Value.IsSymlink)
                {
                    throw LayerException.BadEntry(entryName,
                        $"its parent '{rel}' is a symlink; refusing to write through a link (it could lead outside the target)");
                }
                else if (!st.Value.IsDirectory)
                {
                    throw LayerException.BadEntry(entryName, $"its parent '{rel}' is not a directory");
                }
                _directories.Add(rel);
            }
            return rel;
        }

        private void WriteFile(string host, TarEntry entry)
        {
            byte[] buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
            try
            {
                // CreateNew is O_CREAT|O_EXCL: it fails rather than follow a symlink planted at this name.
                using var file = new FileStream(host, FileMode.CreateNew, FileAccess.Write, FileShare.None, 0);
                if (entry.Size > 0)
                {
                    file.SetLength(entry.Size);
                }
                long written = 0;
                int n;
                while ((n = reader.ReadData(buffer)) > 0)
                {
                    file.Write(buffer, 0, n);
                    written += n;
                }
                if (written != entry.Size)
                {
                    throw LayerException.Truncated(entry.Name);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        private static void SetXattrs(string host, TarEntry entry)
        {
            foreach (var (name, value) in entry.Xattrs)
            {
                if (name.StartsWith(LayerPacker.OverlayXattrPrefix, StringComparison.Ordinal))
                {
                    continue; // overlay's own state comes only from whiteout entries, never from layer content
                }
                LibC.SetXattr(host, name, value);
            }
        }

        /// <summary>Splits a tar name into components, dropping "." and empty ones; refuses absolute names and "..".</summary>
        private static List<string> SplitName(string name, string entryName)
        {
            if (name.StartsWith('/'))
            {
                throw LayerException.BadEntry(entryName, $"absolute name '{name}' is not allowed in a layer");
            }
            if (name.Contains('\0'))
            {
                throw LayerException.BadEntry(entryName, "name contains a NUL character");
            }
            var parts = new List<string>();
            foreach (string part in name.Split('/'))
            {
                if (part is "" or ".")
                {
                    continue;
                }
                if (part == "..")
                {
                    throw LayerException.BadEntry(entryName, $"name '{name}' has a '..' component");
                }
                parts.Add(part);
            }
            return parts;
        }
    }
}
