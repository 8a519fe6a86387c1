using System.Globalization;
using System.Text;
using Kiln.Build.Native;
using Kiln.Build.Planning;
using Kiln.Oci;

namespace Kiln.Build.Store;

/// <summary>Context-file hashes remembered by the file's device, inode, size, mtime and ctime, as git's index
/// does: a file whose status is unchanged since it was hashed is not read again. One cache file per build
/// context under the store's <c>kiln/cache/context/</c>, loaded before planning and written back after.</summary>
/// <remarks>
/// A hash is remembered only when the file's status was the same before and after reading it, and when its
/// last change (mtime and ctime) was at least <see cref="Settle"/> before the read, so that a write landing in
/// the same timestamp tick as the read cannot go unnoticed (git's "racily clean" entries). Any change of content
/// changes ctime, which no tool can set back. The file holds only what the last build of the context read, so
/// deleted files drop out; it is replaced atomically and not fsynced: after a crash it may be missing, and
/// then every file is hashed again. A line that does not parse is ignored.
/// </remarks>
public sealed class ContextHashCache : IContextHasher
{
    public static readonly TimeSpan Settle = TimeSpan.FromSeconds(2);
    private const string Header = "kiln context hashes 1";

    private readonly string _path;
    private readonly IContextHasher _inner;
    private readonly Func<DateTimeOffset> _now;
    private readonly object _gate = new();
    private readonly Dictionary<string, Entry> _loaded;
    private readonly Dictionary<string, Entry> _used = new(StringComparer.Ordinal);

    private readonly record struct Entry(ulong Device, ulong Inode, long Size, long MTime, long CTime, string Hash)
    {
        public static Entry Of(FileStatus s, string hash) =>
            new(s.Device, s.Inode, s.Size, s.MTimeSeconds * 1_000_000_000 + s.MTimeNanoseconds, s.CTimeSeconds * 1_000_000_000 + s.CTimeNanoseconds, hash);

        public bool SameFile(Entry other) =>
            Device == other.Device && Inode == other.Inode && Size == other.Size && MTime == other.MTime && CTime == other.CTime;
    }

    private ContextHashCache(string path, IContextHasher inner, Func<DateTimeOffset> now)
    {
        _path = path;
        _inner = inner;
        _now = now;
        _loaded = Read(path);
    }

    /// <summary>The cache of <paramref name="contextDir"/> in the store at <paramref name="storeRoot"/> (read only
    /// here; <see cref="Save"/> writes). <paramref name="inner"/> and <paramref name="now"/> are for tests.</summary>
    public static ContextHashCache Load(string storeRoot, string contextDir, IContextHasher? inner = null, Func<DateTimeOffset>? now = null)
    {
        var name = Sha256Hasher.HexOf(Path.GetFullPath(contextDir))[..32];
        return new ContextHashCache(Path.Combine(storeRoot, "kiln", "cache", "context", name), inner ?? new Sha256ContextHasher(), now ?? (() => DateTimeOffset.UtcNow));
    }

    /// <summary>The cache files under the store at <paramref name="storeRoot"/> that name no file that still exists
    /// (their context is gone, or they do not parse): what <c>kiln gc</c> removes.</summary>
    internal static IEnumerable<string> Stale(string storeRoot)
    {
        var dir = Path.Combine(storeRoot, "kiln", "cache", "context");
        if (!Directory.Exists(dir))
        {
            return [];
        }
        return Directory.EnumerateFiles(dir).Where(f => !f.Contains(".tmp-", StringComparison.Ordinal) && !Read(f).Keys.Any(File.Exists)).ToList();
    }

    /// <summary>How many files were read and hashed (not answered from the cache) so far.</summary>
    public int FilesHashed { get; private set; }

    public string HashFile(string absolutePath)
    {
        var before = LibC.TryLstat(absolutePath);
        lock (_gate)
        {
            if (before is { IsRegularFile: true } b && _loaded.TryGetValue(absolutePath, out var known) && known.SameFile(Entry.Of(b, known.Hash)))
            {
                _used[absolutePath] = known;
                return known.Hash;
            }
        }
        var hash = _inner.HashFile(absolutePath);
        var after = LibC.TryLstat(absolutePath);
        lock (_gate)
        {
            FilesHashed++;
            if (before is { IsRegularFile: true } s && after is { } a && Entry.Of(s, hash).SameFile(Entry.Of(a, hash)) && Settled(s)
                && !absolutePath.Contains('\t') && !absolutePath.Contains('\n'))
            {
                _used[absolutePath] = Entry.Of(s, hash);
            }
        }
        return hash;
    }

    private bool Settled(FileStatus s)
    {
        var limit = _now() - Settle;
        return Time(s.MTimeSeconds, s.MTimeNanoseconds) < limit && Time(s.CTimeSeconds, s.CTimeNanoseconds) < limit;
    }

    private static DateTimeOffset Time(long seconds, long nanoseconds) =>
        DateTimeOffset.FromUnixTimeSeconds(seconds).AddTicks(nanoseconds / 100);

    /// <summary>Writes back what this build read, when that differs from what was loaded. Never throws: the cache
    /// only saves time.</summary>
    public void Save()
    {
        lock (_gate)
        {
            if (_used.Count == _loaded.Count && _used.All(u => _loaded.TryGetValue(u.Key, out var e) && e == u.Value))
            {
                return;
            }
            var text = new StringBuilder(Header).Append('\n');
            foreach (var (path, e) in _used.OrderBy(u => u.Key, StringComparer.Ordinal))
            {
                text.Append(CultureInfo.InvariantCulture, $"{e.Hash}\t{e.Device}\t{e.Inode}\t{e.Size}\t{e.MTime}\t{e.CTime}\t{path}\n");
            }
            var temp = $"{_path}.tmp-{Environment.ProcessId}";
            try
            {
                Directory.CreateDirectory(Path.GetDirectoryName(_path)!);
                File.WriteAllText(temp, text.ToString());
                File.Move(temp, _path, overwrite: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                try
                {
                    File.Delete(temp);
                }
                catch (Exception inner) when (inner is IOException or UnauthorizedAccessException)
                {
                }
            }
        }
    }

    private static Dictionary<string, Entry> Read(string path)
    {
        var entries = new Dictionary<string, Entry>(StringComparer.Ordinal);
        string[] lines;
        try
        {
            lines = File.ReadAllLines(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return entries;
        }
        if (lines.Length == 0 || lines[0] != Header)
        {
            return entries;
        }
        foreach (var line in lines.Skip(1))
        {
            var f = line.Split('\t');
            if (f.Length == 7 && f[0].Length == 64 && f[0].All(char.IsAsciiHexDigitLower)
                && ulong.TryParse(f[1], CultureInfo.InvariantCulture, out var dev) && ulong.TryParse(f[2], CultureInfo.InvariantCulture, out var ino)
                && long.TryParse(f[3], CultureInfo.InvariantCulture, out var size) && long.TryParse(f[4], CultureInfo.InvariantCulture, out var mtime)
                && long.TryParse(f[5], CultureInfo.InvariantCulture, out var ctime) && f[6].StartsWith('/'))
            {
                entries[f[6]] = new Entry(dev, ino, size, mtime, ctime, f[0]);
            }
        }
        return entries;
    }
}
