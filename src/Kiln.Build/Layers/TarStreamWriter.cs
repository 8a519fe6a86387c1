using System.Buffers.Text;
using System.Text;
using Kiln.Oci.Archives;

namespace Kiln.Build.Layers;

/// <summary>A deterministic PAX tar writer: plain USTAR headers, preceded by a PAX 'x' header only when a field does
/// not fit (long or non-ASCII names, big ids or sizes) or there are xattrs; PAX records sorted by key.</summary>
internal sealed class TarStreamWriter(Stream output)
{
    private const int Block = 512;
    private const long MaxOctal7 = 0x1FFFFF; // 7 octal digits
    private const long MaxOctal11 = 0x1FFFFFFFF; // 11 octal digits
    private readonly byte[] _header = new byte[Block];
    private static readonly byte[] Zeros = new byte[Block * 2];

    public void WriteHeader(TarEntry entry)
    {
        var pax = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        byte[] name = Encoding.UTF8.GetBytes(entry.Name);
        byte[] link = Encoding.UTF8.GetBytes(entry.LinkName);
        if (name.Length > 100 || !IsAscii(name))
        {
            pax["path"] = name;
        }
        if (link.Length > 100 || !IsAscii(link))
        {
            pax["linkpath"] = link;
        }
        if (entry.Uid > MaxOctal7)
        {
            pax["uid"] = Encoding.ASCII.GetBytes(entry.Uid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        if (entry.Gid > MaxOctal7)
        {
            pax["gid"] = Encoding.ASCII.GetBytes(entry.Gid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        if (entry.Size > MaxOctal11)
        {
            pax["size"] = Encoding.ASCII.GetBytes(entry.Size.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        if (entry.MTime < 0 || entry.MTime > MaxOctal11)
        {
            pax["mtime"] = Encoding.ASCII.GetBytes(entry.MTime.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        foreach (var (key, value) in entry.Xattrs)
        {
            pax["SCHILY.xattr." + key] = value;
        }

        if (pax.Count > 0)
        {
            byte[] records = EncodePax(pax);
            string dir = "", file = entry.Name.TrimEnd('/');
            int slash = file.LastIndexOf('/');
            if (slash >= 0)
            {
                dir = file[..(slash + 1)];
                file = file[(slash + 1)..];
            }
            byte[] paxName = Encoding.UTF8.GetBytes(dir + "PaxHeaders.0/" + file);
            FillHeader(Truncate(paxName), 'x', 0, 0, 0, records.Length, 0, [], 0, 0);
            output.Write(_header);
            output.Write(records);
            Pad(records.Length);
        }

        FillHeader(Truncate(name), (char)entry.Kind, entry.Mode & 0xFFF,
            Math.Min(entry.Uid, MaxOctal7), Math.Min(entry.Gid, MaxOctal7),
            entry.Size > MaxOctal11 ? 0 : entry.Size, Math.Clamp(entry.MTime, 0, MaxOctal11),
            Truncate(link), entry.DevMajor, entry.DevMinor);
        output.Write(_header);
    }

    /// <summary>Pads the data of the entry just written (of <paramref name="size"/> bytes) to a whole block.</summary>
    public void Pad(long size)
    {
        int rest = (int)(size % Block);
        if (rest != 0)
        {
            output.Write(Zeros, 0, Block - rest);
        }
    }

    public void Finish() => output.Write(Zeros);

    private void FillHeader(ReadOnlySpan<byte> name, char type, uint mode, long uid, long gid, long size, long mtime,
        ReadOnlySpan<byte> link, uint major, uint minor)
    {
        var h = _header.AsSpan();
        h.Clear();
        name.CopyTo(h[..100]);
        UstarHeader.Octal(h.Slice(100, 8), mode);
        UstarHeader.Octal(h.Slice(108, 8), uid);
        UstarHeader.Octal(h.Slice(116, 8), gid);
        UstarHeader.Octal(h.Slice(124, 12), size);
        UstarHeader.Octal(h.Slice(136, 12), mtime);
        h[156] = (byte)type;
        link.CopyTo(h.Slice(157, 100));
        UstarHeader.Seal(h, major, minor);
    }

    private static ReadOnlySpan<byte> Truncate(byte[] text) => text.AsSpan(0, Math.Min(text.Length, 100));

    private static bool IsAscii(byte[] text) => Ascii.IsValid(text);

    private static byte[] EncodePax(SortedDictionary<string, byte[]> records)
    {
        var ms = new MemoryStream();
        Span<byte> num = stackalloc byte[12];
        foreach (var (key, value) in records)
        {
            byte[] k = Encoding.UTF8.GetBytes(key);
            int body = 1 + k.Length + 1 + value.Length + 1; // " key=value\n"
            int len = body + 1;
            while (len != body + Digits(len))
            {
                len = body + Digits(len);
            }
            Utf8Formatter.TryFormat(len, num, out int written);
            ms.Write(num[..written]);
            ms.WriteByte((byte)' ');
            ms.Write(k);
            ms.WriteByte((byte)'=');
            ms.Write(value);
            ms.WriteByte((byte)'\n');
        }
        return ms.ToArray();
    }

    private static int Digits(int n) => n.ToString(System.Globalization.CultureInfo.InvariantCulture).Length;
}
