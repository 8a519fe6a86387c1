using System.Globalization;
using Kiln.Build.Native;
using Kiln.Build.Sandbox;
using Kiln.Build.Store;
using Kiln.Oci;

namespace Kiln.Build.Exporters.Disk;

/// <summary>Makes an image's disk from a kept disk of an image that shares all but a few top layers with it: copies
/// the kept raw disk and applies only the paths those layers touch to its ext4 root with debugfs, then checks the
/// filesystem with e2fsck. Whatever it cannot do safely it declines (with the reason), and the caller builds in full.</summary>
internal static class IncrementalDisk
{
    /// <summary>More differing layers than this (both sides together) is not an app change: build in full.</summary>
    public const int MaxDifferingLayers = 8;

    private const int MaxCommands = 50_000;

    /// <summary>The kept disk that shares the longest prefix of layers with <paramref name="diffIds"/> and can be patched
    /// into its disk, or null with the reason there is none.</summary>
    public static (DiskCacheEntry? Entry, int Shared, string Reason) Choose(KilnStore store, IReadOnlyList<Digest> diffIds, string bootIdentity,
        DiskLayout layout, bool autoSized, long usedBytes)
    {
        DiskCacheEntry? best = null;
        int bestShared = 0;
        string reason = "no disk of an image sharing its lower layers has been exported before";
        foreach (var e in store.ListDisks())
        {
            var old = e.ParsedDiffIds()!;
            int shared = 0;
            while (shared < old.Count && shared < diffIds.Count && old[shared] == diffIds[shared])
            {
                shared++;
            }
            if (shared == 0)
            {
                continue;
            }
            if (Differing(old, diffIds, shared).Count > MaxDifferingLayers)
            {
                reason = $"the kept disk of {e.Image} differs in more than {MaxDifferingLayers} layers";
                continue;
            }
            if (e.BootIdentity != bootIdentity)
            {
                reason = $"the kernel or initrd differs from the kept disk of {e.Image}";
                continue;
            }
            bool sizeFits = autoSized
                ? e.AutoSized && e.BootBytes == layout.BootBytes && e.RootBytes >= usedBytes + usedBytes * 15 / 100 + 192 * DiskLayout.MiB
                : !e.AutoSized && e.DiskBytes == layout.DiskBytes && e.RootOffset == layout.RootOffset && e.RootBytes == layout.RootBytes;
            if (!sizeFits)
            {
                reason = $"the disk size differs from the kept disk of {e.Image}";
                continue;
            }
            if (!old.All(store.Snapshots.HasSnapshot))
            {
                reason = $"the layers of the kept disk of {e.Image} are no longer in the store";
                continue;
            }
            if (shared > bestShared || (shared == bestShared && best is not null && old.Count < best.DiffIds.Count))
            {
                best = e;
                bestShared = shared;
            }
        }
        return (best, bestShared, best is null ? reason : "");
    }

    /// <summary>Works out the debugfs commands that turn <paramref name="basis"/>'s root into the new image's, without
    /// touching any disk. Returns the plan, or null with the reason it declined.</summary>
    public static (DebugfsPlan? Plan, string? Declined) Prepare(KilnStore store, DiskCacheEntry basis, int shared, IReadOnlyList<Digest> diffIds,
        MergedTree newTree, string workDir, CancellationToken ct)
    {
        try
        {
            var oldIds = basis.ParsedDiffIds()!;
            var oldTree = new MergedTree(oldIds.Reverse().Select(store.Snapshots.SnapshotPath).ToList());
            var touched = new SortedSet<string>(PathOrder.Instance);
            foreach (var id in Differing(oldIds, diffIds, shared))
            {
                CollectTouched(store.Snapshots.SnapshotPath(id), touched, oldTree, newTree, ct);
            }
            var plan = new DebugfsPlan(Path.Combine(workDir, "xattrs"));
            foreach (var path in touched)
            {
                ct.ThrowIfCancellationRequested();
                plan.Diff(path, oldTree.Lookup(path), newTree.Lookup(path));
                if (plan.CommandCount > MaxCommands)
                {
                    throw new IncrementalDeclinedException($"more than {MaxCommands} changes to apply");
                }
            }
            return (plan, null);
        }
        catch (IncrementalDeclinedException d)
        {
            return (null, d.Message);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or Layers.LayerException)
        {
            return (null, $"reading the layers failed: {e.Message}");
        }
    }

    /// <summary>Applies the plan to the ext4 root at <paramref name="rootOffset"/> of <paramref name="diskPath"/> (a copy of
    /// the kept disk, or the kept disk itself once its record is gone) and checks it with <c>e2fsck -fn</c>. Returns the
    /// byte ranges of the disk it wrote (from debugfs's undo file: what an output written from the old disk needs to
    /// become the new one), or the reason it declined; on a decline or any failure (a cancel too) the disk file is deleted.</summary>
    public static async Task<(IReadOnlyList<ByteRange>? Written, string? Declined)> ApplyAsync(DebugfsPlan plan, string diskPath, long rootOffset,
        string workDir, CancellationToken ct)
    {
        try
        {
            var fs = $"{diskPath}?offset={rootOffset.ToString(CultureInfo.InvariantCulture)}";
            IReadOnlyList<ByteRange> written = [];
            if (plan.CommandCount > 0)
            {
                await CheckSpaceAsync(fs, plan, ct).ConfigureAwait(false);
                var script = Path.Combine(workDir, "debugfs.script");
                await File.WriteAllLinesAsync(script, plan.Commands(), ct).ConfigureAwait(false);
                var errors = Path.Combine(workDir, "debugfs.errors");
                // The undo file holds the old content of each block debugfs writes (small for an app change): its keys
                // are the exact list of blocks written, so the qcow2 written before can be brought up to date in place.
                var undo = Path.Combine(workDir, "debugfs.undo");
                var r = await HostTool.RunAsync(HostPrograms.Sh.Name, ["-c", $"exec {HostPrograms.Debugfs} -w -z \"$4\" -f \"$1\" \"$2\" 2>\"$3\"", "sh", script, fs, errors, undo], null, ct).ConfigureAwait(false);
                // debugfs exits 0 even when a command fails; its errors are the stderr lines after the version banner.
                var problems = File.Exists(errors)
                    ? File.ReadAllLines(errors).Where(l => l.Length > 0 && !l.StartsWith("debugfs ", StringComparison.Ordinal)).ToList()
                    : [];
                if (r.ExitCode != 0 || problems.Count > 0)
                {
                    throw new IncrementalDeclinedException($"debugfs could not apply the changes: {string.Join("; ", problems.Take(3))}{HostTool.Tail(r.Output, r.ExitCode != 0 ? 3 : 0)}");
                }
                written = DebugfsUndo.WrittenRanges(undo, rootOffset);
            }
            var fsck = await HostTool.RunAsync(HostPrograms.E2fsck.Name, ["-fn", fs], null, ct).ConfigureAwait(false);
            if (fsck.ExitCode != 0)
            {
                throw new IncrementalDeclinedException($"{HostPrograms.E2fsck} -fn found problems after applying the changes: {HostTool.Tail(fsck.Output, 5)}");
            }
            return (written, null);
        }
        catch (IncrementalDeclinedException d)
        {
            StoreFs.TryDeleteFile(diskPath);
            return (null, d.Message);
        }
        catch
        {
            StoreFs.TryDeleteFile(diskPath);
            throw;
        }
    }

    /// <summary>Every image path a layer snapshot has an entry for (whiteouts included). An opaque dir replaces the
    /// whole dir, so then every path under it in either tree is touched.</summary>
    /// <summary>The layers, of both images, at the positions above <paramref name="shared"/> where the two differ. A layer
    /// that is the same at the same depth in both (e.g. a server's kernel layer above a changed app layer, when the
    /// package step gave the same layer again) changes the same paths in the same way in both stacks: a path none of the
    /// differing layers touches resolves to the same entry in both trees, so only the differing layers are walked.</summary>
    internal static List<Digest> Differing(IReadOnlyList<Digest> oldIds, IReadOnlyList<Digest> newIds, int shared)
    {
        var list = new List<Digest>();
        for (int i = shared; i < Math.Max(oldIds.Count, newIds.Count); i++)
        {
            bool inOld = i < oldIds.Count, inNew = i < newIds.Count;
            if (inOld && inNew && oldIds[i] == newIds[i])
            {
                continue;
            }
            if (inOld)
            {
                list.Add(oldIds[i]);
            }
            if (inNew)
            {
                list.Add(newIds[i]);
            }
        }
        return list;
    }

    private static void CollectTouched(string snapshot, SortedSet<string> touched, MergedTree oldTree, MergedTree newTree, CancellationToken ct)
    {
        var pending = new Stack<(string Host, string Image)>();
        pending.Push((snapshot, ""));
        while (pending.Count > 0)
        {
            ct.ThrowIfCancellationRequested();
            var (host, image) = pending.Pop();
            foreach (var entry in Directory.EnumerateFileSystemEntries(host))
            {
                var name = Path.GetFileName(entry);
                var path = image + "/" + name;
                touched.Add(path);
                if (LibC.Lstat(entry).IsDirectory)
                {
                    pending.Push((entry, path));
                    if (Layers.SafePath.IsOpaque(entry))
                    {
                        foreach (var tree in new[] { oldTree, newTree })
                        {
                            if (tree.Lookup(path) is { DirHosts.Count: > 0 } dir)
                            {
                                foreach (var node in MergedTree.Walk(dir, ct))
                                {
                                    touched.Add(node.ImagePath);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    private static async Task CheckSpaceAsync(string fs, DebugfsPlan plan, CancellationToken ct)
    {
        var r = await HostTool.RunAsync(HostPrograms.Dumpe2fs.Name, ["-h", fs], null, ct).ConfigureAwait(false);
        long Field(string name)
        {
            var line = r.Output.Split('\n').FirstOrDefault(l => l.StartsWith(name + ":", StringComparison.Ordinal));
            return line is not null && long.TryParse(line[(name.Length + 1)..].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : -1;
        }
        long blockSize = Field("Block size"), freeBlocks = Field("Free blocks"), reserved = Field("Reserved block count"), freeInodes = Field("Free inodes");
        if (r.ExitCode != 0 || blockSize <= 0 || freeBlocks < 0 || freeInodes < 0)
        {
            throw new IncrementalDeclinedException("cannot read the kept disk's free space (dumpe2fs)");
        }
        long available = (freeBlocks - Math.Max(0, reserved)) * blockSize;
        if (plan.BytesWritten > available * 9 / 10 || plan.InodesCreated > freeInodes - 16)
        {
            throw new IncrementalDeclinedException($"the kept disk has too little free space for the changes ({DiskLayout.Mib(plan.BytesWritten)} to write, {DiskLayout.Mib(available)} free)");
        }
    }

    /// <summary>Orders image paths so that a directory comes right before what it holds ("/a", "/a/b", "/a-b").</summary>
    private sealed class PathOrder : IComparer<string>
    {
        public static readonly PathOrder Instance = new();

        public int Compare(string? x, string? y)
        {
            var a = x!.AsSpan();
            var b = y!.AsSpan();
            int n = Math.Min(a.Length, b.Length);
            for (int i = 0; i < n; i++)
            {
                if (a[i] != b[i])
                {
                    return a[i] == '/' ? -1 : b[i] == '/' ? 1 : a[i].CompareTo(b[i]);
                }
            }
            return a.Length.CompareTo(b.Length);
        }
    }
}
