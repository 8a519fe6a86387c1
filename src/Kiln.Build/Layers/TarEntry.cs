namespace Kiln.Build.Layers;

internal enum TarKind : byte
{
    File = (byte)'0',
    HardLink = (byte)'1',
    Symlink = (byte)'2',
    CharDevice = (byte)'3',
    BlockDevice = (byte)'4',
    Directory = (byte)'5',
    Fifo = (byte)'6',
}

/// <summary>One tar entry's metadata. Xattr values are raw bytes: capabilities are binary and must not pass through
/// a text decoder (which is why Kiln reads and writes tar itself rather than with System.Formats.Tar, whose PAX
/// values are strings and whose PAX header names carry the process id, breaking determinism).</summary>
internal sealed class TarEntry
{
    public required string Name { get; set; }
    public TarKind Kind { get; set; }
    public uint Mode { get; set; }
    public long Uid { get; set; }
    public long Gid { get; set; }
    public long Size { get; set; }
    public long MTime { get; set; }
    public string LinkName { get; set; } = "";
    public uint DevMajor { get; set; }
    public uint DevMinor { get; set; }
    public List<KeyValuePair<string, byte[]>> Xattrs { get; } = [];
}
