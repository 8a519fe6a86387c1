using Kiln.Build.Native;

namespace Kiln.Build.Layers;

/// <summary>The <c>copy</c> build step: Docker COPY semantics, writing only into the step's overlay upper dir and
/// resolving every image path through <see cref="SafePath"/> over [upper, ...lowers].</summary>
public static class LayerCopier
{
    private const uint DefaultDirMode = 0x1ED; // 0755

    public static Task CopyAsync(string contextDir, IReadOnlyList<string> sources, string destination, string upperDir,
        IReadOnlyList<string> lowerDirsTopFirst, int? uid, int? gid, int? mode, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sources);
        ArgumentNullException.ThrowIfNull(lowerDirsTopFirst);
        ArgumentException.ThrowIfNullOrEmpty(destination);
        if (sources.Count == 0)
        {
            throw new ArgumentException("a copy needs at least one source", nameof(sources));
        }
        var copy = new Copy(Path.TrimEndingDirectorySeparator(Path.GetFullPath(contextDir)),
            Path.TrimEndingDirectorySeparator(Path.GetFullPath(upperDir)), lowerDirsTopFirst,
            (uint)(uid ?? 0), (uint)(gid ?? 0), mode is { } m ? (uint)m & 0xFFF : null, cancellationToken);
        return Task.Run(() => copy.Run(sources, destination), cancellationToken);
    }

    private sealed class Copy(string context, string upper, IReadOnlyList<string> lowers, uint uid, uint gid,
        uint? fileMode, CancellationToken cancellationToken)
    {
        private readonly string[] _stack = [upper, .. lowers];

        public void Run(IReadOnlyList<string> sources, string destination)
        {
            string dest = destination.StartsWith('/') ? destination : "/" + destination;
            bool destIsDir = dest.EndsWith('/') || dest.EndsWith("/.", StringComparison.Ordinal);
            if (sources.Count > 1 && !destIsDir)
            {
                throw LayerException.BadPath(destination, "copying several sources needs a destination ending with '/'");
            }
            string resolved = SafePath.Resolve(_stack, dest, followLast: true);
            foreach (string source in sources)
            {
                cancellationToken.ThrowIfCancellationRequested();
                string sourceHost = ContextPath(source);
                var st = LibC.Lstat(sourceHost);
                if (st.IsDirectory)
                {
                    EnsureDirectory(resolved, (st.Permissions, uid, gid));
                    CopyTree(sourceHost, resolved);
                    continue;
                }
                string target;
                if (destIsDir || SafePath.Lookup(_stack, resolved) is { Kind: ImageEntryKind.Directory })
                {
                    target = Child(resolved, Path.GetFileName(sourceHost));
                }
                else
                {
                    // A file replaces whatever sits at the destination name, a symlink included: never write through it.
                    target = SafePath.Resolve(_stack, dest, followLast: false);
                }
                EnsureDirectory(Parent(target), null);
                CopyNonDirectory(sourceHost, st, target);
            }
        }

        private void CopyTree(string sourceDir, string imageDir)
        {
            var children = Directory.EnumerateFileSystemEntries(sourceDir).ToList();
            children.Sort(StringComparer.Ordinal);
            foreach (string child in children)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var st = LibC.Lstat(child);
                string name = Path.GetFileName(child);
                if (st.IsDirectory)
                {
                    // Like COPY, a directory merges into what the image has there, following an image symlink.
                    string target = SafePath.Resolve(_stack, Child(imageDir, name), followLast: true);
                    EnsureDirectory(target, (st.Permissions, uid, gid));
                    CopyTree(child, target);
                }
                else
                {
                    CopyNonDirectory(child, st, Child(imageDir, name));
                }
            }
        }

        /// <summary>Makes <paramref name="imagePath"/> a directory present in the upper dir: missing ones are created
        /// (0755 root:root, or <paramref name="finalMeta"/> for the last), ones only in a lower layer are copied up
        /// with their mode and owner.</summary>
        private void EnsureDirectory(string imagePath, (uint Mode, uint Uid, uint Gid)? finalMeta)
        {
            if (imagePath == "/")
            {
                return;
            }
            string[] parts = imagePath[1..].Split('/');
            string current = "";
            for (int i = 0; i < parts.Length; i++)
            {
                current += "/" + parts[i];
                string host = SafePath.Join(upper, current);
                var entry = SafePath.Lookup(_stack, current);
                if (entry is { Kind: ImageEntryKind.Directory })
                {
                    if (entry.LayerIndex != 0)
                    {
                        MakeDirectory(host, entry.Mode, entry.Uid, entry.Gid, opaque: false);
                    }
                    continue;
                }
                if (entry is not null)
                {
                    throw LayerException.BadPath(current, $"is a {entry.Kind} in the image, not a directory");
                }
                // Absent in the merged view. A whiteout in upper hides lower content: the new dir must hide it too.
                bool opaque = false;
                if (LibC.TryLstat(host) is { } existing)
                {
                    File.Delete(host);
                    opaque = existing.IsWhiteout;
                }
                var meta = i == parts.Length - 1 && finalMeta is { } f ? f : (DefaultDirMode, 0u, 0u);
                MakeDirectory(host, meta.Item1, meta.Item2, meta.Item3, opaque);
            }
        }

        private static void MakeDirectory(string host, uint mode, uint uid, uint gid, bool opaque)
        {
            Directory.CreateDirectory(host);
            LibC.Lchown(host, uid, gid);
            LibC.Chmod(host, mode);
            if (opaque)
            {
                LibC.SetXattr(host, LayerPacker.OpaqueXattr, "y"u8);
            }
        }

        private void CopyNonDirectory(string sourceHost, FileStatus st, string imagePath)
        {
            if (st.IsSocket)
            {
                return;
            }
            string host = SafePath.Join(upper, imagePath);
            if (SafePath.Lookup(_stack, imagePath) is { Kind: ImageEntryKind.Directory })
            {
                throw LayerException.BadPath(imagePath, "is a directory in the image; a file cannot replace it");
            }
            if (LibC.TryLstat(host) is not null)
            {
                File.Delete(host); // a whiteout, file or symlink in upper: unlinked, never followed
            }
            if (st.IsRegularFile)
            {
                using (var input = new FileStream(sourceHost, FileMode.Open, FileAccess.Read, FileShare.Read, 0, FileOptions.SequentialScan))
                using (var output = new FileStream(host, FileMode.CreateNew, FileAccess.Write, FileShare.None, 0))
                {
                    input.CopyTo(output, 1 << 20);
                }
                LibC.Lchown(host, uid, gid);
                LibC.Chmod(host, fileMode ?? st.Permissions);
            }
            else if (st.IsSymlink)
            {
                // A link is data: copied as it is, whatever it points at, never read through.
                File.CreateSymbolicLink(host, new FileInfo(sourceHost).LinkTarget ?? "");
                LibC.Lchown(host, uid, gid);
            }
            else
            {
                LibC.Mknod(host, st.FileType | st.Permissions, st.RdevMajor, st.RdevMinor);
                LibC.Lchown(host, uid, gid);
                LibC.Chmod(host, fileMode ?? st.Permissions);
            }
            LibC.SetTimesNoFollow(host, st.MTimeSeconds, st.MTimeNanoseconds);
        }

        /// <summary>The host path of a context-relative source, refusing one that reaches through a context symlink.</summary>
        private string ContextPath(string source)
        {
            string current = context;
            foreach (string part in source.Split('/', StringSplitOptions.RemoveEmptyEntries))
            {
                if (part == ".")
                {
                    continue;
                }
                if (part == "..")
                {
                    throw LayerException.BadPath(source, "a copy source must stay inside the build context");
                }
                if (current != context && LibC.TryLstat(current) is { IsDirectory: false })
                {
                    throw LayerException.BadPath(source, "a parent of this copy source is not a directory (a symlink?)");
                }
                current = current + "/" + part;
            }
            if (LibC.TryLstat(current) is null)
            {
                throw LayerException.BadPath(source, "copy source does not exist in the build context");
            }
            return current;
        }

        private static string Child(string dir, string name) => dir == "/" ? "/" + name : dir + "/" + name;

        private static string Parent(string path)
        {
            int slash = path.LastIndexOf('/');
            return slash <= 0 ? "/" : path[..slash];
        }
    }
}
