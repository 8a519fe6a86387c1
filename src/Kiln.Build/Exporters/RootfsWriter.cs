using System.Buffers;
using System.IO.Compression;
using Kiln.Build.Layers;
using Kiln.Build.Store;
using Kiln.Oci;
using ZstdSharp;

namespace Kiln.Build.Exporters;

/// <summary>Writes the merged filesystem of an image as one plain tar: layers applied in order with OCI
/// whiteouts, no whiteout entries left, owners, modes, xattrs, links and devices kept.</summary>
/// <remarks>Each layer is decompressed once into a spool file in the store's temp area (checked against its diff
/// ID), which gives random access to file data; entries are then written sorted by path components, a directory
/// before its contents, so the output depends on the image alone. Hard links are kept as links: of the paths
/// sharing one file, the first in that order holds the data and the others link to it.</remarks>
internal sealed class RootfsWriter
{
    private const string WhiteoutPrefix = ".wh.";
    private const string OpaqueMarker = ".wh..wh..opq";

    private readonly KilnStore _store;
    private readonly string _image;
    private readonly Action<string> _report;

    public RootfsWriter(KilnStore store, string image, Action<string> report)
    {
        _store = store;
        _image = image;
        _report = report;
    }

    /// <summary>One entry of one layer, with where its data lies in that layer's spool file.</summary>
    private sealed record Item(TarEntry Entry, int Layer, long DataOffset);

    public async Task WriteAsync(Manifest manifest, ImageConfig config, Stream output, long epoch, CancellationToken ct)
    {
        if (config.RootFs.DiffIds.Count != manifest.Layers.Count)
        {
            throw ExportException.Failed($"{_image}: the config lists {config.RootFs.DiffIds.Count} diff IDs for {manifest.Layers.Count} layers");
        }
        var work = _store.CreateTempDir("export-rootfs");
        var spools = new List<FileStream>();
        try
        {
            var layers = new List<Dictionary<string, Item>>();
            var whiteouts = new List<(List<string> Hidden, List<string> Opaque)>();
            for (int i = 0; i < manifest.Layers.Count; i++)
            {
                ct.ThrowIfCancellationRequested();
                _report($"reading layer {i + 1} of {manifest.Layers.Count}");
                var spoolPath = Path.Combine(work, "layer" + i.ToString(System.Globalization.CultureInfo.InvariantCulture) + ".tar");
                await SpoolAsync(manifest.Layers[i], config.RootFs.DiffIds[i], i, spoolPath, ct).ConfigureAwait(false);
                var spool = new FileStream(spoolPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
                spools.Add(spool);
                var (items, hidden, opaque) = Index(spool, i);
                layers.Add(items);
                whiteouts.Add((hidden, opaque));
            }
            var merged = Merge(layers, whiteouts);
            _report($"writing {merged.Count} entries");
            await Task.Run(() => Write(merged, layers, spools, output, epoch, ct), ct).ConfigureAwait(false);
        }
        finally
        {
            foreach (var s in spools)
            {
                await s.DisposeAsync().ConfigureAwait(false);
            }
            _store.DeleteTempDir(work);
        }
    }

    /// <summary>Decompresses a layer blob into <paramref name="path"/>, checking the result against its diff ID.</summary>
    private async Task SpoolAsync(Descriptor layer, Digest diffId, int index, string path, CancellationToken ct)
    {
        try
        {
            await using var blob = _store.Content.OpenBlob(layer.Digest);
            await using Stream tar = layer.MediaType switch
            {
                MediaTypes.LayerGzip or MediaTypes.DockerLayerGzip => new GZipStream(blob, CompressionMode.Decompress, leaveOpen: true),
                MediaTypes.LayerZstd => new DecompressionStream(blob, leaveOpen: true),
                MediaTypes.LayerTar => blob,
                _ => throw ExportException.Failed($"{_image}: layer {index + 1} has unsupported media type '{layer.MediaType}'"),
            };
            await using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous);
            using var hash = new Sha256Hasher();
            var buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
            try
            {
                int n;
                while ((n = await tar.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
                {
                    hash.AppendData(buffer, 0, n);
                    await file.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
            var actual = Digest.FromHash(hash.GetHashAndReset());
            if (actual != diffId)
            {
                throw ExportException.Failed($"{_image}: layer {index + 1} ({layer.Digest}) unpacks to {actual}, but the config says {diffId}");
            }
        }
        catch (Exception ex) when (ex is InvalidDataException or ZstdException)
        {
            throw ExportException.Failed($"{_image}: layer {index + 1} ({layer.Digest}) cannot be decompressed: {ex.Message}", ex);
        }
    }

    /// <summary>A layer's entries by normalised path (the last at a path wins, as in extraction) and its whiteouts.</summary>
    private (Dictionary<string, Item> Items, List<string> Hidden, List<string> Opaque) Index(FileStream spool, int layer)
    {
        var items = new Dictionary<string, Item>(StringComparer.Ordinal);
        var hidden = new List<string>();
        var opaque = new List<string>();
        spool.Position = 0;
        // The reader consumes whole 512-byte blocks straight from the file, so after a header the file's position
        // is where the entry's data starts.
        var reader = new TarStreamReader(spool);
        try
        {
            while (reader.Next() is { } entry)
            {
                var path = Normalise(entry.Name, layer);
                if (path.Length == 0)
                {
                    continue; // the layer root: its metadata is not the layer's to give
                }
                int slash = path.LastIndexOf('/');
                string parent = slash < 0 ? "" : path[..slash];
                string name = path[(slash + 1)..];
                if (name == OpaqueMarker)
                {
                    opaque.Add(parent);
                    continue;
                }
                if (name.StartsWith(WhiteoutPrefix + WhiteoutPrefix, StringComparison.Ordinal))
                {
                    continue; // other AUFS meta entries
                }
                if (name.StartsWith(WhiteoutPrefix, StringComparison.Ordinal))
                {
                    var target = name[WhiteoutPrefix.Length..];
                    if (target is "" or "." or "..")
                    {
                        throw ExportException.Failed($"{_image}: layer {layer + 1}: invalid whiteout '{entry.Name}'");
                    }
                    hidden.Add(parent.Length == 0 ? target : parent + "/" + target);
                    continue;
                }
                if (entry.Kind == TarKind.HardLink)
                {
                    entry.LinkName = Normalise(entry.LinkName, layer);
                }
                items[path] = new Item(entry, layer, spool.Position);
            }
        }
        catch (LayerException ex)
        {
            throw ExportException.Failed($"{_image}: layer {layer + 1}: {ex.Message}", ex);
        }
        return (items, hidden, opaque);
    }

    private string Normalise(string name, int layer)
    {
        var parts = new List<string>();
        foreach (var part in name.Split('/'))
        {
            if (part is "" or ".")
            {
                continue;
            }
            if (part == ".." || part.Contains('\0'))
            {
                throw ExportException.Failed($"{_image}: layer {layer + 1}: entry '{name}' leaves the root");
            }
            parts.Add(part);
        }
        return string.Join('/', parts);
    }

    /// <summary>The image's filesystem: from the top layer down, a path is taken from the highest layer that holds
    /// it, unless a higher layer whited it (or a parent) out, made a parent opaque, or put a non-directory there.</summary>
    private static SortedDictionary<string, Item> Merge(List<Dictionary<string, Item>> layers, List<(List<string> Hidden, List<string> Opaque)> whiteouts)
    {
        var merged = new Dictionary<string, Item>(StringComparer.Ordinal);
        var hidden = new HashSet<string>(StringComparer.Ordinal);
        var opaque = new HashSet<string>(StringComparer.Ordinal);
        for (int l = layers.Count - 1; l >= 0; l--)
        {
            foreach (var (path, item) in layers[l])
            {
                if (!merged.ContainsKey(path) && !IsHidden(path, merged, hidden, opaque))
                {
                    merged[path] = item;
                }
            }
            hidden.UnionWith(whiteouts[l].Hidden);
            opaque.UnionWith(whiteouts[l].Opaque);
        }
        var sorted = new SortedDictionary<string, Item>(PathOrder.Instance);
        foreach (var (path, item) in merged)
        {
            sorted[path] = item;
        }
        return sorted;
    }

    private static bool IsHidden(string path, Dictionary<string, Item> merged, HashSet<string> hidden, HashSet<string> opaque)
    {
        if (hidden.Contains(path))
        {
            return true;
        }
        for (int slash = path.LastIndexOf('/'); slash > 0; slash = path.LastIndexOf('/', slash - 1))
        {
            var ancestor = path[..slash];
            if (hidden.Contains(ancestor) || opaque.Contains(ancestor)
                || (merged.TryGetValue(ancestor, out var above) && above.Entry.Kind != TarKind.Directory))
            {
                return true;
            }
        }
        return opaque.Contains("");
    }

    private void Write(SortedDictionary<string, Item> merged, List<Dictionary<string, Item>> layers, List<FileStream> spools,
        Stream output, long epoch, CancellationToken ct)
    {
        // Each regular file's data is identified by (layer, offset); a hard link resolves to the file it names as
        // that layer saw it: the same layer first, then the ones below.
        var firstPath = new Dictionary<(int, long), string>();
        var tar = new TarStreamWriter(output);
        var directories = new HashSet<string>(StringComparer.Ordinal);
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            foreach (var (path, item) in merged)
            {
                ct.ThrowIfCancellationRequested();
                WriteMissingParents(tar, path, directories, epoch);
                var entry = item.Entry;
                var source = item;
                if (entry.Kind == TarKind.HardLink)
                {
                    source = ResolveLink(path, item, layers);
                }
                if (source.Entry.Kind == TarKind.File)
                {
                    var key = (source.Layer, source.DataOffset);
                    if (firstPath.TryGetValue(key, out var first))
                    {
                        tar.WriteHeader(Copy(source.Entry, path, TarKind.HardLink, first));
                        continue;
                    }
                    firstPath[key] = path;
                    var header = Copy(source.Entry, path, TarKind.File, "");
                    tar.WriteHeader(header);
                    CopyData(spools[source.Layer], source.DataOffset, header.Size, output, buffer, path);
                    tar.Pad(header.Size);
                    continue;
                }
                if (entry.Kind == TarKind.Directory)
                {
                    directories.Add(path);
                }
                tar.WriteHeader(Copy(entry, entry.Kind == TarKind.Directory ? path + "/" : path, entry.Kind, entry.LinkName));
            }
            tar.Finish();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>A parent no layer holds (a layer written by another tool may omit it) is written as the extractor
    /// creates it: 0755 root:root.</summary>
    private static void WriteMissingParents(TarStreamWriter tar, string path, HashSet<string> directories, long epoch)
    {
        for (int slash = path.IndexOf('/'); slash > 0; slash = path.IndexOf('/', slash + 1))
        {
            var parent = path[..slash];
            if (directories.Add(parent))
            {
                tar.WriteHeader(new TarEntry { Name = parent + "/", Kind = TarKind.Directory, Mode = 0x1ED, MTime = epoch });
            }
        }
    }

    private Item ResolveLink(string path, Item link, List<Dictionary<string, Item>> layers)
    {
        var target = link.Entry.LinkName;
        for (int hops = 0; hops < 64; hops++)
        {
            Item? found = null;
            for (int l = link.Layer; l >= 0 && found is null; l--)
            {
                if (layers[l].TryGetValue(target, out var candidate))
                {
                    found = candidate;
                }
            }
            if (found is null)
            {
                throw ExportException.Failed($"{_image}: '{path}' is a hard link to '{link.Entry.LinkName}', which no layer holds");
            }
            if (found.Entry.Kind != TarKind.HardLink)
            {
                if (found.Entry.Kind != TarKind.File)
                {
                    throw ExportException.Failed($"{_image}: '{path}' is a hard link to '{target}', which is not a regular file");
                }
                return found;
            }
            link = found;
            target = found.Entry.LinkName;
        }
        throw ExportException.Failed($"{_image}: '{path}': hard links nest too deep");
    }

    private static TarEntry Copy(TarEntry from, string name, TarKind kind, string linkName)
    {
        var entry = new TarEntry
        {
            Name = name,
            Kind = kind,
            Mode = from.Mode,
            Uid = from.Uid,
            Gid = from.Gid,
            Size = kind == TarKind.File ? from.Size : 0,
            MTime = from.MTime,
            LinkName = linkName,
            DevMajor = from.DevMajor,
            DevMinor = from.DevMinor,
        };
        if (kind != TarKind.HardLink)
        {
            entry.Xattrs.AddRange(from.Xattrs.OrderBy(x => x.Key, StringComparer.Ordinal));
        }
        return entry;
    }

    private void CopyData(FileStream spool, long offset, long size, Stream output, byte[] buffer, string path)
    {
        spool.Position = offset;
        long left = size;
        while (left > 0)
        {
            int n = spool.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
            if (n == 0)
            {
                throw ExportException.Failed($"{_image}: '{path}': layer data ends early");
            }
            output.Write(buffer, 0, n);
            left -= n;
        }
    }

    /// <summary>Orders paths component by component, so that a directory's contents follow it directly
    /// (<c>a</c>, <c>a/b</c>, <c>a-b</c>) rather than by raw characters (<c>a</c>, <c>a-b</c>, <c>a/b</c>).</summary>
    private sealed class PathOrder : IComparer<string>
    {
        public static readonly PathOrder Instance = new();

        public int Compare(string? x, string? y)
        {
            var a = x.AsSpan();
            var b = y.AsSpan();
            int n = Math.Min(a.Length, b.Length);
            for (int i = 0; i < n; i++)
            {
                if (a[i] != b[i])
                {
                    if (a[i] == '/')
                    {
                        return -1;
                    }
                    if (b[i] == '/')
                    {
                        return 1;
                    }
                    return a[i].CompareTo(b[i]);
                }
            }
            return a.Length.CompareTo(b.Length);
        }
    }
}
