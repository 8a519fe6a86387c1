using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text;
using Kiln.Build.Native;

namespace Kiln.Build.Execution;

/// <summary>One of apt's <c>*_Packages</c> lists as the index saw it: a list that changed since makes the index stale.</summary>
internal sealed record ListFile(string Name, long Size, long MTimeSeconds, long MTimeNanoseconds, long CTimeSeconds,
    long CTimeNanoseconds, ulong Inode)
{
    public static ListFile Of(string path, FileStatus st) =>
        new(Path.GetFileName(path), st.Size, st.MTimeSeconds, st.MTimeNanoseconds, st.CTimeSeconds, st.CTimeNanoseconds, st.Inode);
}

/// <summary>An index of the shared package lists (apt's uncompressed <c>*_Packages</c> files): for every package
/// name its stanzas (list file, offset, length), for every stanza the names it depends on (Depends, Pre-Depends) and
/// mentions (Recommends, Suggests), and for every name the packages that provide it. Built once per lists update
/// (a scan of about 50 MB) and kept beside the lists; a package step maps it (about 7 MB, of which it touches a few
/// pages) to give apt a narrow view of the lists (<see cref="PackageView"/>).</summary>
internal sealed unsafe partial class PackageIndex : IDisposable
{
    private const long Magic = 0x3158_4950_4E4C_494B; // "KILNPIX1"

    // The sections, in file order: name bytes, name offsets, per stanza its list, offset and length, per name its
    // stanzas, per name its providers, per stanza its depends and its mentions (each as offsets, then ids).
    private enum Section { Names, NameStart, StanzaFile, StanzaOffset, StanzaLength, ByNameStart, ByName, ProviderStart, Providers, DependStart, Depends, MentionStart, Mentions }

    private const int SectionCount = 13;

    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;
    private readonly (long Offset, int Count)[] _sections;

    private PackageIndex(MemoryMappedFile map, MemoryMappedViewAccessor view, byte* start, (long, int)[] sections, IReadOnlyList<ListFile> files)
    {
        _map = map;
        _view = view;
        _base = start;
        _sections = sections;
        Files = files;
    }

    /// <summary>The lists indexed, in the order their stanzas are numbered.</summary>
    public IReadOnlyList<ListFile> Files { get; }

    public int NameCount => _sections[(int)Section.NameStart].Count - 1;

    public int StanzaCount => _sections[(int)Section.StanzaFile].Count;

    private ReadOnlySpan<T> Get<T>(Section section) where T : unmanaged
    {
        var (offset, count) = _sections[(int)section];
        return new ReadOnlySpan<T>(_base + offset, count);
    }

    private ReadOnlySpan<int> Slice(Section starts, Section values, int key)
    {
        var start = Get<int>(starts);
        return Get<int>(values)[start[key]..start[key + 1]];
    }

    private ReadOnlySpan<byte> NameBytes(int id)
    {
        var start = Get<int>(Section.NameStart);
        return Get<byte>(Section.Names)[start[id]..start[id + 1]];
    }

    public string Name(int id) => Encoding.UTF8.GetString(NameBytes(id));

    /// <summary>The id of <paramref name="name"/>, or -1 when no list names it.</summary>
    public int Find(ReadOnlySpan<byte> name)
    {
        int lo = 0, hi = NameCount - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            int c = NameBytes(mid).SequenceCompareTo(name);
            if (c == 0)
            {
                return mid;
            }
            if (c < 0)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }
        return -1;
    }

    public int Find(string name) => Find(Encoding.UTF8.GetBytes(name));

    /// <summary>The stanzas of the package called <paramref name="name"/> (every version in every list).</summary>
    public ReadOnlySpan<int> StanzasOf(int name) => Slice(Section.ByNameStart, Section.ByName, name);

    /// <summary>The packages that declare <c>Provides: name</c>.</summary>
    public ReadOnlySpan<int> ProvidersOf(int name) => Slice(Section.ProviderStart, Section.Providers, name);

    /// <summary>Every name in the stanza's Depends and Pre-Depends, alternatives included.</summary>
    public ReadOnlySpan<int> DependsOf(int stanza) => Slice(Section.DependStart, Section.Depends, stanza);

    /// <summary>Every name in the stanza's Recommends and Suggests.</summary>
    public ReadOnlySpan<int> MentionsOf(int stanza) => Slice(Section.MentionStart, Section.Mentions, stanza);

    public int FileOf(int stanza) => Get<int>(Section.StanzaFile)[stanza];

    /// <summary>Where the stanza's text lives in its list: from its first line to the newline of its last.</summary>
    public (long Offset, int Length) RangeOf(int stanza) => (Get<long>(Section.StanzaOffset)[stanza], Get<int>(Section.StanzaLength)[stanza]);

    public void Dispose()
    {
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }

    /// <summary>The <c>*_Packages</c> lists of <paramref name="listsDir"/>, sorted by name; null when apt keeps any of
    /// them compressed (Acquire::GzipIndexes), which the index does not read.</summary>
    public static IReadOnlyList<ListFile>? CurrentLists(string listsDir)
    {
        var files = new List<ListFile>();
        foreach (var path in Directory.EnumerateFiles(listsDir))
        {
            var name = Path.GetFileName(path);
            if (name.EndsWith("_Packages", StringComparison.Ordinal))
            {
                if (LibC.TryLstat(path) is { IsRegularFile: true } st)
                {
                    files.Add(ListFile.Of(path, st));
                }
            }
            else if (name.Contains("_Packages.", StringComparison.Ordinal))
            {
                return null;
            }
        }
        files.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return files;
    }

    /// <summary>The index at <paramref name="indexPath"/> when it was made from exactly <paramref name="lists"/>;
    /// otherwise a new one, written there (fsynced, then renamed into place). Null when there are no lists.</summary>
    public static PackageIndex? OpenOrBuild(string listsDir, string indexPath, IReadOnlyList<ListFile> lists)
    {
        if (lists.Count == 0)
        {
            return null;
        }
        if (TryOpen(indexPath) is { } existing)
        {
            if (existing.Files.SequenceEqual(lists))
            {
                return existing;
            }
            existing.Dispose();
        }
        Build(listsDir, lists).Save(indexPath);
        return TryOpen(indexPath) ?? throw new InvalidDataException($"package index '{indexPath}' cannot be read back");
    }

    /// <summary>The index saved at <paramref name="path"/>, or null when there is none or it is not whole.</summary>
    public static PackageIndex? TryOpen(string path)
    {
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        long length = stream.Length;
        if (length < 16)
        {
            stream.Dispose();
            return null;
        }
        var map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
        MemoryMappedViewAccessor? view = null;
        byte* start = null;
        try
        {
            view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref start);
            start += view.PointerOffset;
            var (sections, files) = ReadHeader(new ReadOnlySpan<byte>(start, checked((int)length)));
            return new PackageIndex(map, view, start, sections, files);
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or ArgumentException or OverflowException)
        {
            if (start != null)
            {
                view!.SafeMemoryMappedViewHandle.ReleasePointer();
            }
            view?.Dispose();
            map.Dispose();
            return null;
        }
    }

    /// <summary>Checks the frame (both magics, every section inside the file, offsets that start at 0 and end at
    /// their values' count); ids are checked where they are used, by the spans' bounds.</summary>
    private static ((long, int)[] Sections, IReadOnlyList<ListFile> Files) ReadHeader(ReadOnlySpan<byte> data)
    {
        var reader = new SpanReader(data);
        if (reader.Int64() != Magic || BitConverter.ToInt64(data[^8..]) != Magic)
        {
            throw new InvalidDataException("not a whole package index");
        }
        var sections = new (long, int)[SectionCount];
        for (int i = 0; i < SectionCount; i++)
        {
            long offset = reader.Int64();
            int count = reader.Int32();
            long end = offset + (long)count * SizeOf((Section)i);
            if (offset < 0 || count < 0 || end > data.Length - 8)
            {
                throw new InvalidDataException("package index section out of range");
            }
            sections[i] = (offset, count);
        }
        int fileCount = reader.Int32();
        var files = new List<ListFile>(fileCount);
        for (int i = 0; i < fileCount; i++)
        {
            files.Add(new ListFile(reader.String(), reader.Int64(), reader.Int64(), reader.Int64(), reader.Int64(), reader.Int64(), (ulong)reader.Int64()));
        }
        return (sections, files);
    }

    private static int SizeOf(Section section) => section switch
    {
        Section.Names => 1,
        Section.StanzaOffset => 8,
        _ => 4,
    };

    /// <summary>Reads the header's fields in order.</summary>
    private ref struct SpanReader(ReadOnlySpan<byte> data)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _pos;

        private ReadOnlySpan<byte> Take(int n)
        {
            if (n < 0 || _pos + n > _data.Length)
            {
                throw new InvalidDataException("package index header cut short");
            }
            var span = _data.Slice(_pos, n);
            _pos += n;
            return span;
        }

        public long Int64() => BitConverter.ToInt64(Take(8));

        public int Int32() => BitConverter.ToInt32(Take(4));

        public string String() => Encoding.UTF8.GetString(Take(Int32()));
    }
}
