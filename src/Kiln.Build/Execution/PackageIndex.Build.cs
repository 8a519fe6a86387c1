using System.Runtime.InteropServices;
using System.Text;

namespace Kiln.Build.Execution;

/// <summary>Making a <see cref="PackageIndex"/>: one scan of the lists, the names numbered in byte order, the sections
/// written to a file that <see cref="PackageIndex.TryOpen"/> maps.</summary>
internal sealed partial class PackageIndex
{
    /// <summary>Reads every list of <paramref name="lists"/> from <paramref name="listsDir"/>.</summary>
    internal static BuiltIndex Build(string listsDir, IReadOnlyList<ListFile> lists)
    {
        var builder = new IndexBuilder();
        for (int f = 0; f < lists.Count; f++)
        {
            var path = Path.Combine(listsDir, lists[f].Name);
            var data = File.ReadAllBytes(path);
            if (data.Length != lists[f].Size)
            {
                throw new IOException($"package list '{path}' changed while it was indexed");
            }
            builder.AddList(f, data);
        }
        return builder.Finish(lists);
    }

    /// <summary>A new index in memory, as arrays in <see cref="Section"/> order, to be saved and then mapped.</summary>
    internal sealed class BuiltIndex(IReadOnlyList<ListFile> files, params Array[] sections)
    {
        /// <summary>Writes the header (the sections' places, the lists) and the sections, 8-byte aligned, to a temporary
        /// file, fsyncs it and renames it to <paramref name="path"/>: a reader sees the old index or the whole new one.</summary>
        public void Save(string path)
        {
            if (sections.Length != SectionCount)
            {
                throw new ArgumentException("an index has " + SectionCount + " sections", nameof(sections));
            }
            var header = new MemoryStream();
            var w = new BinaryWriter(header, Encoding.UTF8, leaveOpen: true);
            w.Write(Magic);
            long headerSize = 8 + SectionCount * 12 + 4 + files.Sum(f => 4 + Encoding.UTF8.GetByteCount(f.Name) + 6 * 8);
            long offset = Align(headerSize);
            foreach (var section in sections)
            {
                w.Write(offset);
                w.Write(section.Length);
                offset = Align(offset + Buffer.ByteLength(section));
            }
            w.Write(files.Count);
            foreach (var f in files)
            {
                var name = Encoding.UTF8.GetBytes(f.Name);
                w.Write(name.Length);
                w.Write(name);
                w.Write(f.Size);
                w.Write(f.MTimeSeconds);
                w.Write(f.MTimeNanoseconds);
                w.Write(f.CTimeSeconds);
                w.Write(f.CTimeNanoseconds);
                w.Write((long)f.Inode);
            }
            w.Flush();
            var temp = path + ".tmp-" + Environment.ProcessId;
            try
            {
                using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
                {
                    header.Position = 0;
                    header.CopyTo(stream);
                    Pad(stream);
                    foreach (var section in sections)
                    {
                        stream.Write(Bytes(section));
                        Pad(stream);
                    }
                    stream.Write(BitConverter.GetBytes(Magic));
                    stream.Flush(flushToDisk: true);
                }
                File.Move(temp, path, overwrite: true);
            }
            catch
            {
                File.Delete(temp);
                throw;
            }
        }

        private static long Align(long n) => (n + 7) & ~7L;

        private static void Pad(Stream stream)
        {
            while (stream.Position % 8 != 0)
            {
                stream.WriteByte(0);
            }
        }

        private static ReadOnlySpan<byte> Bytes(Array section) => section switch
        {
            byte[] b => b,
            int[] i => MemoryMarshal.AsBytes(i.AsSpan()),
            long[] l => MemoryMarshal.AsBytes(l.AsSpan()),
            _ => throw new ArgumentException("an index section is an array of bytes, ints or longs"),
        };
    }

    /// <summary>Collects stanzas with names as strings, then numbers the names in byte order.</summary>
    private sealed class IndexBuilder
    {
        private readonly Dictionary<string, int> _ids = new(StringComparer.Ordinal);
        private readonly List<string> _names = [];
        private readonly List<(int File, long Offset, int Length, int Name)> _stanzas = [];
        private readonly List<int> _dependStart = [0], _depends = [], _mentionStart = [0], _mentions = [];
        private readonly List<(int Provided, int Provider)> _provides = [];

        private int Id(ReadOnlySpan<byte> name)
        {
            var text = Encoding.UTF8.GetString(name);
            if (!_ids.TryGetValue(text, out int id))
            {
                id = _names.Count;
                _ids.Add(text, id);
                _names.Add(text);
            }
            return id;
        }

        public void AddList(int file, byte[] data)
        {
            int pos = 0;
            while (pos < data.Length)
            {
                while (pos < data.Length && data[pos] == (byte)'\n')
                {
                    pos++;
                }
                if (pos >= data.Length)
                {
                    break;
                }
                pos = AddStanza(file, data, pos);
            }
        }

        private enum Field { Other, Package, Depends, Mentions, Provides }

        /// <summary>Reads one stanza starting at <paramref name="start"/>; returns where the next may start.</summary>
        private int AddStanza(int file, byte[] data, int start)
        {
            int pos = start, end = start;
            int package = -1;
            var field = Field.Other;
            var relation = new RelationReader();
            var depends = new List<int>();
            var mentions = new List<int>();
            var provides = new List<int>();
            while (pos < data.Length && data[pos] != (byte)'\n')
            {
                int nl = data.AsSpan(pos).IndexOf((byte)'\n');
                int lineEnd = nl < 0 ? data.Length : pos + nl;
                var line = data.AsSpan(pos, lineEnd - pos);
                ReadOnlySpan<byte> value;
                if (line[0] is (byte)' ' or (byte)'\t')
                {
                    value = line;
                }
                else
                {
                    int colon = line.IndexOf((byte)':');
                    var key = colon < 0 ? line : line[..colon];
                    field = Classify(key);
                    relation = new RelationReader();
                    value = colon < 0 ? [] : line[(colon + 1)..];
                    if (field == Field.Package)
                    {
                        package = Id(value.Trim((byte)' ').Trim((byte)'\t'));
                    }
                }
                var target = field switch { Field.Depends => depends, Field.Mentions => mentions, Field.Provides => provides, _ => null };
                if (target is not null)
                {
                    relation.Read(value, name => target.Add(Id(name)));
                }
                end = nl < 0 ? data.Length : lineEnd + 1;
                pos = end;
            }
            if (package >= 0)
            {
                _stanzas.Add((file, start, end - start, package));
                _depends.AddRange(depends);
                _dependStart.Add(_depends.Count);
                _mentions.AddRange(mentions);
                _mentionStart.Add(_mentions.Count);
                foreach (var p in provides)
                {
                    _provides.Add((p, package));
                }
            }
            return pos;
        }

        private static Field Classify(ReadOnlySpan<byte> key) =>
            Is(key, "Package") ? Field.Package
            : Is(key, "Depends") || Is(key, "Pre-Depends") ? Field.Depends
            : Is(key, "Recommends") || Is(key, "Suggests") ? Field.Mentions
            : Is(key, "Provides") ? Field.Provides
            : Field.Other;

        private static bool Is(ReadOnlySpan<byte> key, string name) => Ascii.EqualsIgnoreCase(key, name);

        public BuiltIndex Finish(IReadOnlyList<ListFile> files)
        {
            // Names in byte order, so a lookup is a binary search over the saved bytes.
            var encoded = _names.Select(Encoding.UTF8.GetBytes).ToArray();
            var order = Enumerable.Range(0, _names.Count).ToArray();
            Array.Sort(order, (a, b) => encoded[a].AsSpan().SequenceCompareTo(encoded[b]));
            var newId = new int[order.Length];
            for (int i = 0; i < order.Length; i++)
            {
                newId[order[i]] = i;
            }
            var nameStart = new int[order.Length + 1];
            var names = new List<byte>();
            for (int i = 0; i < order.Length; i++)
            {
                names.AddRange(encoded[order[i]]);
                nameStart[i + 1] = names.Count;
            }
            var (byNameStart, byName) = Group(order.Length, _stanzas.Select((s, i) => (newId[s.Name], i)));
            var (providerStart, providers) = Group(order.Length, _provides.Select(p => (newId[p.Provided], newId[p.Provider])));
            return new BuiltIndex(files, names.ToArray(), nameStart,
                _stanzas.Select(s => s.File).ToArray(), _stanzas.Select(s => s.Offset).ToArray(), _stanzas.Select(s => s.Length).ToArray(),
                byNameStart, byName, providerStart, providers,
                _dependStart.ToArray(), _depends.Select(d => newId[d]).ToArray(), _mentionStart.ToArray(), _mentions.Select(m => newId[m]).ToArray());
        }

        /// <summary>Pairs (key, value) as offsets per key and the values in key order, values kept in their order
        /// within a key and without repeats.</summary>
        private static (int[] Start, int[] Values) Group(int keys, IEnumerable<(int Key, int Value)> pairs)
        {
            var lists = new List<int>?[keys];
            foreach (var (key, value) in pairs)
            {
                var list = lists[key] ??= [];
                if (!list.Contains(value))
                {
                    list.Add(value);
                }
            }
            var start = new int[keys + 1];
            var values = new List<int>();
            for (int k = 0; k < keys; k++)
            {
                if (lists[k] is { } list)
                {
                    values.AddRange(list);
                }
                start[k + 1] = values.Count;
            }
            return (start, [.. values]);
        }
    }

    /// <summary>Reads the package names of a relation field (<c>a (&gt;= 1) | b:any, c [amd64] &lt;!nocheck&gt;</c>)
    /// line by line: a name starts a relation or follows a '|', and ends at a space, '(', '[', '&lt;' or ':'.</summary>
    private struct RelationReader
    {
        private bool _skipping;

        public void Read(ReadOnlySpan<byte> text, Action<ReadOnlySpan<byte>> name)
        {
            int i = 0;
            while (i < text.Length)
            {
                byte c = text[i];
                if (c is (byte)',' or (byte)'|')
                {
                    _skipping = false;
                    i++;
                }
                else if (_skipping || c is (byte)' ' or (byte)'\t')
                {
                    i++;
                }
                else
                {
                    int startOfName = i;
                    while (i < text.Length && text[i] is not ((byte)' ' or (byte)'\t' or (byte)'(' or (byte)'[' or (byte)'<' or (byte)':' or (byte)',' or (byte)'|'))
                    {
                        i++;
                    }
                    if (i > startOfName)
                    {
                        name(text[startOfName..i]);
                    }
                    _skipping = true;
                }
            }
        }
    }
}
