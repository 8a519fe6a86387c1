using System.Text;
using System.Text.Json;
using Kiln.Build.Store.Names;
using Kiln.Oci;

namespace Kiln.Build.Store;

/// <summary>The last raw disk exported of an image, kept so the next disk of an image that differs only in its
/// top layers can be made by patching it (see <c>Exporters/Disk</c>). Lives in <c>kiln/disks/</c>: a sparse
/// <c>KEY-RANDOM.raw</c>, its record <c>KEY.json</c> (KEY from the image name) and a lock file <c>KEY.lock</c>.</summary>
public sealed record DiskCacheEntry
{
    public int SchemaVersion { get; init; } = 1;

    /// <summary>The image name the disk was exported as.</summary>
    public required string Image { get; init; }

    /// <summary>The manifest digest and the layers' diff_ids (bottom first) of the image on the disk.</summary>
    public required string Manifest { get; init; }
    public required IReadOnlyList<string> DiffIds { get; init; }

    /// <summary>The raw disk's file name in <c>kiln/disks/</c>.</summary>
    public required string RawFile { get; init; }

    public required long DiskBytes { get; init; }
    public required long BootOffset { get; init; }
    public required long BootBytes { get; init; }
    public required long RootOffset { get; init; }
    public required long RootBytes { get; init; }

    /// <summary>The ext4 root's UUID (the kernel command line names it).</summary>
    public required string RootUuid { get; init; }

    /// <summary>Kernel version and the SHA-256 of kernel and initrd: the boot partition is valid while this holds.</summary>
    public required string BootIdentity { get; init; }

    /// <summary>True when the size was chosen automatically (used space plus headroom).</summary>
    public required bool AutoSized { get; init; }

    /// <summary>Names the raw file's bytes: new whenever they change (a build or an update in place). An output written
    /// from these bytes records it, so that a later update can patch that output with only the ranges it wrote. Null in
    /// records written before it existed.</summary>
    public string? ContentId { get; init; }

    /// <summary>The snapshot files the kernel and initrd of <see cref="BootIdentity"/> were hashed from. Snapshots never
    /// change, so a disk booting the same files has the same identity without hashing them again. Null in older records.</summary>
    public string? BootSource { get; init; }

    /// <summary>The diff_ids as digests; null when any is malformed.</summary>
    public IReadOnlyList<Digest>? ParsedDiffIds()
    {
        var list = new List<Digest>();
        foreach (var d in DiffIds ?? [])
        {
            if (!Digest.TryParse(d, out var digest))
            {
                return null;
            }
            list.Add(digest);
        }
        return list;
    }
}

public sealed partial class KilnStore
{
    public string DisksDir => Path.Combine(_kilnDir, "disks");

    private string DiskEntryPath(string image) =>
        Path.Combine(DisksDir, Convert.ToHexStringLower(Sha256Hasher.HashData(Encoding.UTF8.GetBytes(image)))[..32] + ".json");

    /// <summary>The path of an entry's raw disk, or null when the entry's file name is not one the store writes.</summary>
    public string? DiskRawPath(DiskCacheEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        var name = entry.RawFile ?? "";
        return name.EndsWith(".raw", StringComparison.Ordinal) && name.Length > 4
            && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.') && !name.StartsWith('.')
            ? Path.Combine(DisksDir, name)
            : null;
    }

    /// <summary>Locks the kept disk of <paramref name="image"/>: shared to read (copy) its raw file, exclusive to change
    /// it in place or replace it.</summary>
    public IDisposable LockDisk(string image, bool exclusive, CancellationToken ct = default)
    {
        ImageNames.CheckTagName(image);
        Directory.CreateDirectory(DisksDir);
        return FileLock.Acquire(Path.ChangeExtension(DiskEntryPath(image), ".lock"), exclusive, ct);
    }

    /// <summary>The kept disk of <paramref name="image"/>, or null.</summary>
    public DiskCacheEntry? TryGetDisk(string image)
    {
        ImageNames.CheckTagName(image);
        var path = DiskEntryPath(image);
        return File.Exists(path) && ReadDiskEntry(path) is { } e && DiskRawPath(e) is { } raw && File.Exists(raw) ? e : null;
    }

    /// <summary>Deletes the record of <paramref name="image"/>'s kept disk but not its raw file, which the caller (holding
    /// the disk's exclusive lock) now owns: it changes it in place and records it again, or deletes it. A crash in
    /// between leaves a raw file no record names, which gc deletes.</summary>
    public void ForgetDisk(string image)
    {
        ImageNames.CheckTagName(image);
        var path = DiskEntryPath(image);
        if (File.Exists(path))
        {
            File.Delete(path);
            Native.FsyncDirectory(DisksDir);
        }
    }

    /// <summary>Records <paramref name="entry"/> (whose raw file is already in <c>kiln/disks/</c>) as the kept disk of its image.</summary>
    public async Task RecordDiskAsync(DiskCacheEntry entry, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(entry);
        ImageNames.CheckTagName(entry.Image);
        var raw = DiskRawPath(entry);
        if (raw is null || !File.Exists(raw))
        {
            throw new StoreException($"cannot record the disk of '{entry.Image}': its raw file '{entry.RawFile}' is not in '{DisksDir}'");
        }
        try
        {
            Native.FsyncPath(raw);
            await StoreFs.AtomicWriteAsync(NewIngestPath(), DiskEntryPath(entry.Image),
                JsonSerializer.SerializeToUtf8Bytes(entry, StoreJsonContext.Default.DiskCacheEntry), ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw StoreException.Io($"recording the disk of '{entry.Image}' in '{DisksDir}'", e);
        }
    }

    /// <summary>Every readable disk record whose raw file exists.</summary>
    public IReadOnlyList<DiskCacheEntry> ListDisks()
    {
        if (!Directory.Exists(DisksDir))
        {
            return [];
        }
        var list = new List<DiskCacheEntry>();
        foreach (var file in Directory.EnumerateFiles(DisksDir, "*.json"))
        {
            if (ReadDiskEntry(file) is { } e && DiskRawPath(e) is { } raw && File.Exists(raw))
            {
                list.Add(e);
            }
        }
        return list;
    }

    private static DiskCacheEntry? ReadDiskEntry(string file)
    {
        try
        {
            var e = JsonSerializer.Deserialize(File.ReadAllBytes(file), StoreJsonContext.Default.DiskCacheEntry);
            return e is { SchemaVersion: 1, Image: not null, Manifest: not null, DiffIds: not null, RawFile: not null, RootUuid: not null, BootIdentity: not null }
                && e.ParsedDiffIds() is not null ? e : null;
        }
        catch (Exception ex) when (ex is JsonException or IOException)
        {
            return null;
        }
    }

    /// <summary>Keeps <paramref name="preparedRaw"/> (a file on the store's filesystem, e.g. in a temp dir) as the
    /// last disk of <c>entry.Image</c>, replacing the previous one: the raw file is renamed in first, then the record
    /// is replaced atomically, then the previous raw file is deleted. The entry's <c>RawFile</c> is chosen here.</summary>
    public async Task<DiskCacheEntry> PutDiskAsync(DiskCacheEntry entry, string preparedRaw, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(entry);
        ImageNames.CheckTagName(entry.Image);
        using var diskLock = LockDisk(entry.Image, exclusive: true, ct);
        var jsonPath = DiskEntryPath(entry.Image);
        var previous = File.Exists(jsonPath) ? ReadDiskEntry(jsonPath) : null;
        var stored = entry with { RawFile = $"{Path.GetFileNameWithoutExtension(jsonPath)}-{RandomSuffix()}.raw" };
        var rawPath = DiskRawPath(stored)!;
        try
        {
            Native.FsyncPath(preparedRaw);
            File.Move(preparedRaw, rawPath);
            await StoreFs.AtomicWriteAsync(NewIngestPath(), jsonPath,
                JsonSerializer.SerializeToUtf8Bytes(stored, StoreJsonContext.Default.DiskCacheEntry), ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            StoreFs.TryDeleteFile(rawPath);
            throw StoreException.Io($"keeping the disk of '{entry.Image}' in '{DisksDir}'", e);
        }
        if (previous is not null && DiskRawPath(previous) is { } old && old != rawPath)
        {
            StoreFs.TryDeleteFile(old);
        }
        return stored;
    }

    /// <summary>Under the exclusive store lock (garbage collection): drops disk records whose image name is no longer
    /// tagged or whose layers' snapshots are going, and raw files no record names. Returns the number of records dropped.</summary>
    private int CollectDisks(HashSet<string> taggedNames, HashSet<Digest> keepSnapshots)
    {
        if (!Directory.Exists(DisksDir))
        {
            return 0;
        }
        int dropped = 0;
        var keepRaw = new HashSet<string>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(DisksDir, "*.json").ToList())
        {
            var e = ReadDiskEntry(file);
            // A disk made from an image with layers of its own on top (a Vagrant box's: IMAGE+vagrant) lives as long as
            // the image's name.
            if (e is null || !taggedNames.Contains(e.Image.Split('+')[0]) || !e.ParsedDiffIds()!.All(keepSnapshots.Contains) || DiskRawPath(e) is null)
            {
                StoreFs.TryDeleteFile(file);
                dropped++;
                continue;
            }
            keepRaw.Add(e.RawFile);
        }
        foreach (var raw in Directory.EnumerateFiles(DisksDir, "*.raw").ToList())
        {
            if (!keepRaw.Contains(Path.GetFileName(raw)))
            {
                StoreFs.TryDeleteFile(raw);
            }
        }
        // No exporter runs now (they hold the store lock shared), so unused lock files can go.
        foreach (var lockFile in Directory.EnumerateFiles(DisksDir, "*.lock").ToList())
        {
            if (!File.Exists(Path.ChangeExtension(lockFile, ".json")))
            {
                StoreFs.TryDeleteFile(lockFile);
            }
        }
        if (dropped > 0)
        {
            Native.FsyncDirectory(DisksDir);
        }
        return dropped;
    }
}
