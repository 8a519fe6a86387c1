using Kiln.Build.Native;

namespace Kiln.Build.Layers;

/// <summary>Copies a layer's directory tree (an overlay upper dir) onto another filesystem as it is: every file type,
/// overlay whiteouts included; owners; modes with setuid, setgid and sticky bits; nanosecond mtimes; extended
/// attributes (the overlay's opaque mark included, its other <c>trusted.overlay.*</c> bookkeeping not, since that
/// names inodes of the source filesystem); hard links within the tree. Sockets are left out, as the packer leaves
/// them out of the layer.</summary>
/// <remarks>Entries are created by several threads at once. Creating a file can wait milliseconds on a disk whose
/// journal is busy; many creates in flight hide that wait.</remarks>
public static class TreeCopier
{
    private sealed record Entry(string Rel, FileStatus Status, List<KeyValuePair<string, byte[]>> Xattrs, int Depth);

    /// <summary>Copies the contents and metadata of <paramref name="source"/> into the existing, empty directory
    /// <paramref name="destination"/>.</summary>
    public static void Copy(string source, string destination, int threads, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        source = Path.GetFullPath(source);
        destination = Path.GetFullPath(destination);
        var dirs = new List<Entry> { Describe(source, "", 0) };
        var others = new List<Entry>();
        for (int i = 0; i < dirs.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var dir = dirs[i];
            foreach (string child in Directory.EnumerateFileSystemEntries(Join(source, dir.Rel)))
            {
                string rel = dir.Rel.Length == 0 ? Path.GetFileName(child) : dir.Rel + "/" + Path.GetFileName(child);
                var entry = Describe(child, rel, dir.Depth + 1);
                if (entry.Status.IsDirectory)
                {
                    dirs.Add(entry);
                }
                else if (!entry.Status.IsSocket)
                {
                    others.Add(entry);
                }
            }
        }

        // Directories level by level (a level's parents exist), then everything else; later names of a
        // hard-linked inode become links to the first once it is written.
        foreach (var level in dirs.Skip(1).GroupBy(d => d.Depth))
        {
            OnThreads(level.ToList(), threads, cancellationToken, d => Directory.CreateDirectory(Join(destination, d.Rel)));
        }
        var firstOfInode = new Dictionary<(ulong, ulong), string>();
        var links = new List<(string First, string Rel)>();
        var writes = new List<Entry>();
        foreach (var e in others)
        {
            if (e.Status.IsRegularFile && e.Status.LinkCount > 1)
            {
                if (firstOfInode.TryGetValue((e.Status.Device, e.Status.Inode), out var first))
                {
                    links.Add((first, e.Rel));
                    continue;
                }
                firstOfInode[(e.Status.Device, e.Status.Inode)] = e.Rel;
            }
            writes.Add(e);
        }
        OnThreads(writes, threads, cancellationToken, e => Write(source, destination, e));
        foreach (var (first, rel) in links)
        {
            LibC.Link(Join(destination, first), Join(destination, rel));
        }
        // Directory metadata last, deepest first: creating an entry changes its parent's mtime.
        foreach (var level in dirs.GroupBy(d => d.Depth).OrderByDescending(g => g.Key))
        {
            OnThreads(level.ToList(), threads, cancellationToken, d => SetMetadata(Join(destination, d.Rel), d));
        }
    }

    private static Entry Describe(string path, string rel, int depth)
    {
        var st = LibC.Lstat(path);
        if (st.IsWhiteout)
        {
            return new Entry(rel, st, [], depth);
        }
        // What the layer keeps, and the opaque mark that makes the copy hide lower layers as the layer's marker does.
        var xattrs = LayerPacker.LayerXattrs(path, out bool opaque);
        if (opaque)
        {
            xattrs.Add(new(LayerPacker.OpaqueXattr, "y"u8.ToArray()));
        }
        return new Entry(rel, st, xattrs, depth);
    }

    private static void Write(string source, string destination, Entry e)
    {
        string from = Join(source, e.Rel);
        string to = Join(destination, e.Rel);
        var st = e.Status;
        if (st.MayHaveHoles)
        {
            CopySparse(from, to, st.Size);
        }
        else if (st.IsRegularFile)
        {
            File.Copy(from, to);
        }
        else if (st.IsSymlink)
        {
            File.CreateSymbolicLink(to, new FileInfo(from).LinkTarget ?? throw new IOException($"cannot read the symlink '{from}'"));
        }
        else
        {
            LibC.Mknod(to, st.FileType | st.Permissions, st.RdevMajor, st.RdevMinor);
        }
        SetMetadata(to, e);
    }

    /// <summary>Copies only the data of a file with holes, so the copy has the same holes (a step that makes a 1 GiB
    /// sparse file on its tmpfs does not get 1 GiB of zeros written to the store's disk).</summary>
    private static void CopySparse(string from, string to, long size)
    {
        using var source = File.OpenHandle(from, FileMode.Open, FileAccess.Read);
        using var target = File.OpenHandle(to, FileMode.CreateNew, FileAccess.Write);
        var segments = LibC.DataSegments(source, size) ?? [(0, size)];
        var buffer = new byte[Math.Min(1 << 20, Math.Max(4096, size))];
        foreach (var (offset, length) in segments)
        {
            for (long done = 0; done < length;)
            {
                int n = RandomAccess.Read(source, buffer.AsSpan(0, (int)Math.Min(buffer.Length, length - done)), offset + done);
                if (n == 0)
                {
                    throw new IOException($"'{from}' ended while it was copied");
                }
                RandomAccess.Write(target, buffer.AsSpan(0, n), offset + done);
                done += n;
            }
        }
        RandomAccess.SetLength(target, size);
    }

    /// <summary>Owner first (chown clears setuid bits and file capabilities), then mode, xattrs, mtime.</summary>
    private static void SetMetadata(string path, Entry e)
    {
        var st = e.Status;
        LibC.Lchown(path, st.Uid, st.Gid);
        if (!st.IsSymlink)
        {
            LibC.Chmod(path, st.Permissions);
        }
        foreach (var (name, value) in e.Xattrs)
        {
            LibC.SetXattr(path, name, value);
        }
        LibC.SetTimesNoFollow(path, st.MTimeSeconds, st.MTimeNanoseconds);
    }

    private static string Join(string root, string rel) => rel.Length == 0 ? root : root + "/" + rel;

    /// <summary>Runs <paramref name="action"/> over <paramref name="items"/> on dedicated threads (the work blocks
    /// in the kernel; the thread pool would add threads too slowly); the first failure is rethrown.</summary>
    private static void OnThreads<T>(List<T> items, int threads, CancellationToken cancellationToken, Action<T> action)
    {
        int n = Math.Min(threads, items.Count / 8 + 1);
        if (n <= 1)
        {
            foreach (var item in items)
            {
                cancellationToken.ThrowIfCancellationRequested();
                action(item);
            }
            return;
        }
        int next = -1;
        Exception? failure = null;
        void Work()
        {
            int i;
            while (Volatile.Read(ref failure) is null && (i = Interlocked.Increment(ref next)) < items.Count)
            {
                try
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    action(items[i]);
                }
                catch (Exception ex)
                {
                    Interlocked.CompareExchange(ref failure, ex, null);
                }
            }
        }
        var workers = Enumerable.Range(0, n - 1).Select(_ => new Thread(Work) { IsBackground = true, Name = "kiln-copy" }).ToList();
        workers.ForEach(t => t.Start());
        Work();
        workers.ForEach(t => t.Join());
        if (failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }
    }
}
