using System.Buffers;
using System.Text;
using Kiln.Build.Native;
using Kiln.Oci;

namespace Kiln.Build.Layers;

/// <summary>Turns an overlay upper dir (or any directory tree) into a deterministic, compressed OCI layer.</summary>
public static class LayerPacker
{
    internal const string WhiteoutPrefix = ".wh.";
    internal const string OpaqueMarker = ".wh..wh..opq";
    internal const string OverlayXattrPrefix = "trusted.overlay.";
    internal const string OpaqueXattr = "trusted.overlay.opaque";

    private enum ItemKind { Normal, Whiteout, Opaque }

    private sealed record Item(string TarName, byte[] SortKey, string HostPath, FileStatus Status, ItemKind Kind,
        List<KeyValuePair<string, byte[]>> Xattrs);

    /// <summary>Does the one-time work of a process's first pack (the compressor's set-up) ahead of need; see
    /// <see cref="Store.KilnStore.Prewarm"/>.</summary>
    public static void Prewarm(Compression compression)
    {
        using var stream = new ParallelCompressStream(Stream.Null, compression, CancellationToken.None);
        stream.Write([0]);
        _ = stream.Complete();
    }

    /// <summary>Writes <paramref name="upperDir"/> as a PAX tar compressed with <paramref name="compression"/> to
    /// <paramref name="destination"/> (left open), hashing while streaming.</summary>
    public static Task<PackedLayer> PackAsync(string upperDir, Stream destination, Compression compression,
        DateTimeOffset epoch, CancellationToken cancellationToken = default) =>
        PackAsync(upperDir, destination, compression, epoch, null, cancellationToken);

    /// <inheritdoc cref="PackAsync(string, Stream, Compression, DateTimeOffset, CancellationToken)"/>
    /// <param name="timings">Filled in with where the time went, when given.</param>
    public static async Task<PackedLayer> PackAsync(string upperDir, Stream destination, Compression compression,
        DateTimeOffset epoch, PackTimings? timings, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        if (!Directory.Exists(upperDir))
        {
            throw new DirectoryNotFoundException($"layer source directory '{upperDir}' does not exist");
        }
        long epochSeconds = epoch.ToUnixTimeSeconds();
        return await Task.Run(() => Pack(Path.GetFullPath(upperDir), destination, compression, epochSeconds, timings, cancellationToken),
            cancellationToken).ConfigureAwait(false);
    }

    private static PackedLayer Pack(string root, Stream destination, Compression compression, long epoch,
        PackTimings? timings, CancellationToken cancellationToken)
    {
        var items = Walk(root, cancellationToken);
        items.Sort((a, b) => a.SortKey.AsSpan().SequenceCompareTo(b.SortKey));

        var firstOfInode = new Dictionary<(ulong, ulong), string>();
        var output = new ParallelCompressStream(destination, compression, cancellationToken);
        try
        {
            var tar = new TarStreamWriter(output);
            // As large as the largest file needs, up to 1 MiB: a small layer's buffer stays off the large object heap.
            long largest = items.Where(i => i.Kind == ItemKind.Normal && i.Status.IsRegularFile).Select(i => i.Status.Size).DefaultIfEmpty(0).Max();
            byte[] buffer = ArrayPool<byte>.Shared.Rent((int)Math.Clamp(largest, 4096, 1 << 20));
            try
            {
                foreach (var item in items)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    var st = item.Status;
                    long mtime = Math.Min(st.MTimeSeconds, epoch);
                    if (item.Kind != ItemKind.Normal)
                    {
                        tar.WriteHeader(new TarEntry { Name = item.TarName, Kind = TarKind.File, MTime = mtime });
                        continue;
                    }
                    var entry = new TarEntry
                    {
                        Name = item.TarName,
                        Mode = st.Permissions,
                        Uid = st.Uid,
                        Gid = st.Gid,
                        MTime = mtime,
                    };
                    entry.Xattrs.AddRange(item.Xattrs);
                    if (st.IsDirectory)
                    {
                        entry.Kind = TarKind.Directory;
                    }
                    else if (st.IsSymlink)
                    {
                        entry.Kind = TarKind.Symlink;
                        entry.LinkName = new FileInfo(item.HostPath).LinkTarget ?? "";
                    }
                    else if (st.IsRegularFile)
                    {
                        if (st.LinkCount > 1)
                        {
                            if (firstOfInode.TryGetValue((st.Device, st.Inode), out var first))
                            {
                                entry.Kind = TarKind.HardLink;
                                entry.LinkName = first;
                                tar.WriteHeader(entry);
                                continue;
                            }
                            firstOfInode[(st.Device, st.Inode)] = item.TarName;
                        }
                        entry.Kind = TarKind.File;
                        entry.Size = st.Size;
                        tar.WriteHeader(entry);
                        CopyData(item, output, buffer);
                        tar.Pad(st.Size);
                        continue;
                    }
                    else
                    {
                        entry.Kind = st.IsCharDevice ? TarKind.CharDevice : st.IsBlockDevice ? TarKind.BlockDevice : TarKind.Fifo;
                        entry.DevMajor = st.RdevMajor;
                        entry.DevMinor = st.RdevMinor;
                    }
                    tar.WriteHeader(entry);
                }
                tar.Finish();
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
            var (diffId, digest, size) = output.Complete();
            if (timings is not null)
            {
                timings.Hash = output.HashTime;
            }
            return new PackedLayer(Digest.FromHash(diffId), Digest.FromHash(digest), size,
                compression == Compression.Zstd ? MediaTypes.LayerZstd : MediaTypes.LayerGzip);
        }
        finally
        {
            output.Dispose();
        }
    }

    private static void CopyData(Item item, Stream output, byte[] buffer)
    {
        long remaining = item.Status.Size;
        using var file = new FileStream(item.HostPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 0,
            FileOptions.SequentialScan);
        while (remaining > 0)
        {
            int n = file.Read(buffer, 0, (int)Math.Min(buffer.Length, remaining));
            if (n == 0)
            {
                throw LayerException.BadEntry(item.TarName, "file shrank while it was being packed");
            }
            output.Write(buffer, 0, n);
            remaining -= n;
        }
    }

    private static List<Item> Walk(string root, CancellationToken cancellationToken)
    {
        var items = new List<Item>();
        var pending = new Stack<(string Host, string Rel)>();
        pending.Push((root, ""));
        while (pending.Count > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var (dir, rel) = pending.Pop();
            foreach (string child in Directory.EnumerateFileSystemEntries(dir))
            {
                string name = Path.GetFileName(child);
                var st = LibC.Lstat(child);
                if (st.IsSocket)
                {
                    continue; // tar cannot hold sockets; they are runtime artefacts anyway
                }
                if (st.IsWhiteout)
                {
                    string wh = rel + WhiteoutPrefix + name;
                    items.Add(new Item(wh, Key(wh), child, st, ItemKind.Whiteout, []));
                    continue;
                }
                var xattrs = LayerXattrs(child, out bool opaque);
                string tarName = st.IsDirectory ? rel + name + "/" : rel + name;
                items.Add(new Item(tarName, Key(tarName), child, st, ItemKind.Normal, xattrs));
                if (st.IsDirectory)
                {
                    if (opaque)
                    {
                        // NUL sorts before every byte of a name, so the marker lands right after its directory.
                        byte[] key = [.. Key(tarName), 0];
                        items.Add(new Item(tarName + OpaqueMarker, key, child, st, ItemKind.Opaque, []));
                    }
                    pending.Push((child, tarName));
                }
            }
        }
        return items;
    }

    /// <summary>The extended attributes of <paramref name="path"/> that belong to a layer: all but overlayfs's own
    /// bookkeeping (<c>trusted.overlay.*</c>), of which only the opaque mark means something, returned apart.</summary>
    internal static List<KeyValuePair<string, byte[]>> LayerXattrs(string path, out bool opaque)
    {
        var xattrs = new List<KeyValuePair<string, byte[]>>();
        opaque = false;
        foreach (string name in LibC.ListXattrs(path))
        {
            byte[]? value = LibC.GetXattr(path, name);
            if (value is null)
            {
                continue;
            }
            if (name.StartsWith(OverlayXattrPrefix, StringComparison.Ordinal))
            {
                opaque |= name == OpaqueXattr && value.AsSpan().SequenceEqual("y"u8);
                continue;
            }
            xattrs.Add(new(name, value));
        }
        return xattrs;
    }

    private static byte[] Key(string tarName) => Encoding.UTF8.GetBytes(tarName);
}
