using System.Text;

namespace Kiln.Build.Layers;

/// <summary>A streaming tar reader for USTAR, PAX (local records; global ones are skipped) and GNU long names.
/// Refuses bad checksums and truncation; xattr values stay raw bytes.</summary>
internal sealed class TarStreamReader(Stream input)
{
    private const int Block = 512;
    private readonly byte[] _block = new byte[Block];
    private long _remaining;  // data bytes of the current entry not yet read
    private long _padding;    // padding after the current entry's data
    private string? _current;

    /// <summary>The next entry, or null at the end-of-archive marker.</summary>
    public TarEntry? Next()
    {
        Skip(_remaining + _padding);
        _remaining = _padding = 0;
        Dictionary<string, byte[]>? pax = null;
        string? longName = null, longLink = null;
        while (true)
        {
            if (!ReadBlock(allowEof: true))
            {
                throw LayerException.Truncated(null);
            }
            if (_block.AsSpan().IndexOfAnyExcept((byte)0) < 0)
            {
                return null;
            }
            VerifyChecksum();
            char type = (char)_block[156];
            long size = ParseNumber(_block.AsSpan(124, 12));
            if (size < 0)
            {
                throw LayerException.BadEntry(HeaderName(), "negative size");
            }
            switch (type)
            {
                case 'x':
                case 'g':
                case 'L':
                case 'K':
                    if (size > 16 << 20)
                    {
                        throw LayerException.BadEntry(HeaderName(), "extended header larger than 16 MiB");
                    }
                    byte[] data = new byte[size];
                    ReadExactly(data, HeaderName());
                    Skip(PadOf(size));
                    if (type == 'x')
                    {
                        pax = ParsePax(data);
                    }
                    else if (type == 'L')
                    {
                        longName = CString(data);
                    }
                    else if (type == 'K')
                    {
                        longLink = CString(data);
                    }
                    continue;
            }

            var entry = new TarEntry { Name = HeaderName() };
            entry.LinkName = CString(_block.AsSpan(157, 100));
            entry.Mode = (uint)ParseNumber(_block.AsSpan(100, 8)) & 0xFFF;
            entry.Uid = ParseNumber(_block.AsSpan(108, 8));
            entry.Gid = ParseNumber(_block.AsSpan(116, 8));
            entry.Size = size;
            entry.MTime = ParseNumber(_block.AsSpan(136, 12));
            entry.DevMajor = (uint)ParseNumber(_block.AsSpan(329, 8));
            entry.DevMinor = (uint)ParseNumber(_block.AsSpan(337, 8));
            entry.Kind = type switch
            {
                '0' or '\0' or '7' => TarKind.File,
                '1' => TarKind.HardLink,
                '2' => TarKind.Symlink,
                '3' => TarKind.CharDevice,
                '4' => TarKind.BlockDevice,
                '5' => TarKind.Directory,
                '6' => TarKind.Fifo,
                _ => throw LayerException.BadEntry(entry.Name, $"unsupported tar entry type '{type}'"),
            };
            if (longName is not null)
            {
                entry.Name = longName;
            }
            if (longLink is not null)
            {
                entry.LinkName = longLink;
            }
            if (pax is not null)
            {
                ApplyPax(entry, pax);
            }
            _remaining = entry.Size;
            _padding = PadOf(entry.Size);
            if (entry.Kind != TarKind.File)
            {
                entry.Size = 0; // only regular files carry data; skip whatever another entry claims
            }
            _current = entry.Name;
            return entry;
        }
    }

    /// <summary>Reads data of the current entry; returns 0 at its end.</summary>
    public int ReadData(Span<byte> buffer)
    {
        if (_remaining == 0)
        {
            return 0;
        }
        int want = (int)Math.Min(buffer.Length, _remaining);
        int n = input.Read(buffer[..want]);
        if (n == 0)
        {
            throw LayerException.Truncated(_current);
        }
        _remaining -= n;
        return n;
    }

    private static long PadOf(long size) => (Block - size % Block) % Block;

    private bool ReadBlock(bool allowEof)
    {
        int total = 0;
        while (total < Block)
        {
            int n = input.Read(_block, total, Block - total);
            if (n == 0)
            {
                if (total == 0 && allowEof)
                {
                    return false;
                }
                throw LayerException.Truncated(_current);
            }
            total += n;
        }
        return true;
    }

    private void ReadExactly(byte[] data, string name)
    {
        int total = 0;
        while (total < data.Length)
        {
            int n = input.Read(data, total, data.Length - total);
            if (n == 0)
            {
                throw LayerException.Truncated(name);
            }
            total += n;
        }
    }

    private void Skip(long count)
    {
        Span<byte> scratch = stackalloc byte[4096];
        while (count > 0)
        {
            int n = input.Read(scratch[..(int)Math.Min(scratch.Length, count)]);
            if (n == 0)
            {
                throw LayerException.Truncated(_current);
            }
            count -= n;
        }
    }

    private string HeaderName()
    {
        string name = CString(_block.AsSpan(0, 100));
        if (_block.AsSpan(257, 6).SequenceEqual("ustar\0"u8))
        {
            string prefix = CString(_block.AsSpan(345, 155));
            if (prefix.Length > 0)
            {
                name = prefix + "/" + name;
            }
        }
        return name;
    }

    private void VerifyChecksum()
    {
        long stored = ParseNumber(_block.AsSpan(148, 8));
        long sum = 0;
        for (int i = 0; i < Block; i++)
        {
            sum += i is >= 148 and < 156 ? (byte)' ' : _block[i];
        }
        if (sum != stored)
        {
            throw LayerException.BadEntry(HeaderName(), "tar header checksum mismatch (corrupt or not a tar stream)");
        }
    }

    private static string CString(ReadOnlySpan<byte> field)
    {
        int nul = field.IndexOf((byte)0);
        return Encoding.UTF8.GetString(nul >= 0 ? field[..nul] : field);
    }

    private static long ParseNumber(ReadOnlySpan<byte> field)
    {
        if (field.Length > 0 && (field[0] & 0x80) != 0)
        {
            // GNU base-256: big-endian two's complement with the top bit as marker.
            long value = field[0] & 0x7F;
            if ((field[0] & 0x40) != 0)
            {
                value |= ~0x7FL; // negative
            }
            for (int i = 1; i < field.Length; i++)
            {
                value = (value << 8) | field[i];
            }
            return value;
        }
        long result = 0;
        foreach (byte b in field)
        {
            if (b is (byte)' ' or 0)
            {
                if (result != 0)
                {
                    break;
                }
                continue;
            }
            if (b < '0' || b > '7')
            {
                throw LayerException.Corrupt("invalid octal number in a tar header");
            }
            result = (result << 3) | (long)(b - '0');
        }
        return result;
    }

    private static Dictionary<string, byte[]> ParsePax(byte[] data)
    {
        var records = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        int pos = 0;
        while (pos < data.Length)
        {
            int space = Array.IndexOf(data, (byte)' ', pos);
            if (space < 0)
            {
                throw LayerException.Corrupt("malformed PAX record");
            }
            if (!int.TryParse(Encoding.ASCII.GetString(data, pos, space - pos), out int len)
                || len <= space - pos || pos + len > data.Length || data[pos + len - 1] != '\n')
            {
                throw LayerException.Corrupt("malformed PAX record length");
            }
            int eq = Array.IndexOf(data, (byte)'=', space + 1, pos + len - space - 1);
            if (eq < 0)
            {
                throw LayerException.Corrupt("malformed PAX record: no '='");
            }
            string key = Encoding.UTF8.GetString(data, space + 1, eq - space - 1);
            records[key] = data.AsSpan(eq + 1, pos + len - 1 - (eq + 1)).ToArray();
            pos += len;
        }
        return records;
    }

    private static void ApplyPax(TarEntry entry, Dictionary<string, byte[]> pax)
    {
        foreach (var (key, value) in pax.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            string text() => Encoding.UTF8.GetString(value);
            switch (key)
            {
                case "path": entry.Name = text(); break;
                case "linkpath": entry.LinkName = text(); break;
                case "uid": entry.Uid = long.Parse(text(), System.Globalization.CultureInfo.InvariantCulture); break;
                case "gid": entry.Gid = long.Parse(text(), System.Globalization.CultureInfo.InvariantCulture); break;
                case "size": entry.Size = long.Parse(text(), System.Globalization.CultureInfo.InvariantCulture); break;
                case "mtime":
                    string t = text();
                    int dot = t.IndexOf('.');
                    entry.MTime = long.Parse(dot >= 0 ? t[..dot] : t, System.Globalization.CultureInfo.InvariantCulture);
                    break;
                default:
                    if (key.StartsWith("SCHILY.xattr.", StringComparison.Ordinal))
                    {
                        entry.Xattrs.Add(new(key["SCHILY.xattr.".Length..], value));
                    }
                    break;
            }
        }
    }
}
