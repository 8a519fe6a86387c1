namespace Kiln.Oci.Archives;

/// <summary>The parts of a 512-byte ustar header that every tar writer of Kiln fills the same way.</summary>
public static class UstarHeader
{
    /// <summary>Writes the magic and version, the device numbers and, last, the checksum into <paramref name="header"/>
    /// (whose other fields are filled).</summary>
    public static void Seal(Span<byte> header, long devMajor = 0, long devMinor = 0)
    {
        "ustar\0"u8.CopyTo(header[257..]);
        "00"u8.CopyTo(header[263..]);
        Octal(header.Slice(329, 8), devMajor);
        Octal(header.Slice(337, 8), devMinor);
        header.Slice(148, 8).Fill((byte)' ');
        int sum = 0;
        foreach (byte b in header)
        {
            sum += b;
        }
        Octal(header.Slice(148, 7), sum);
        header[155] = (byte)' ';
    }

    /// <summary>Zero-padded octal digits followed by a NUL, filling the field.</summary>
    public static void Octal(Span<byte> field, long value)
    {
        int i = field.Length - 1;
        field[i--] = 0;
        for (; i >= 0; i--)
        {
            field[i] = (byte)('0' + (value & 7));
            value >>= 3;
        }
    }
}
