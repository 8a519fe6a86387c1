using Kiln.Build.Layers;

namespace Kiln.Build.Testing;

/// <summary>Read-only access to an image's files through its layer snapshots (topmost first), via
/// <see cref="SafePath"/>: every path resolves inside the image, never on the host.</summary>
internal sealed class ImageFiles
{
    private const int MaxTextBytes = 16 * 1024 * 1024;
    private readonly IReadOnlyList<string> _layers;
    private List<string[]>? _passwd;
    private List<string[]>? _group;

    public ImageFiles(IReadOnlyList<string> layersTopFirst) => _layers = layersTopFirst;

    /// <summary>The entry at <paramref name="path"/> (a symlink itself when <paramref name="follow"/> is false), or null.</summary>
    public ImageEntry? Entry(string path, bool follow) =>
        SafePath.Lookup(_layers, SafePath.Resolve(_layers, path, followLast: follow));

    /// <summary>The bytes of a regular file, or null when there is none at the path (links followed inside the image).</summary>
    public byte[]? ReadBytes(string path, int max = MaxTextBytes)
    {
        if (Entry(path, follow: true) is not { Kind: ImageEntryKind.File } entry)
        {
            return null;
        }
        using var stream = new FileStream(entry.HostPath, new FileStreamOptions { Mode = FileMode.Open, Access = FileAccess.Read, Options = FileOptions.SequentialScan });
        var length = (int)Math.Min(stream.Length, max);
        var buffer = new byte[length];
        stream.ReadExactly(buffer);
        return buffer;
    }

    public Stream? Open(string path) =>
        Entry(path, follow: true) is { Kind: ImageEntryKind.File } entry ? File.OpenRead(entry.HostPath) : null;

    public string? ReadText(string path) => ReadBytes(path) is { } b ? System.Text.Encoding.UTF8.GetString(b) : null;

    /// <summary>/etc/passwd as fields (name, password, uid, gid, gecos, home, shell).</summary>
    public IReadOnlyList<string[]> Passwd => _passwd ??= Colons("/etc/passwd", 7);

    /// <summary>/etc/group as fields (name, password, gid, members).</summary>
    public IReadOnlyList<string[]> Group => _group ??= Colons("/etc/group", 4);

    public string? UserName(uint uid) => Passwd.FirstOrDefault(f => f[2] == uid.ToString(System.Globalization.CultureInfo.InvariantCulture))?[0];

    public string? GroupName(uint gid) => Group.FirstOrDefault(f => f[2] == gid.ToString(System.Globalization.CultureInfo.InvariantCulture))?[0];

    private List<string[]> Colons(string path, int fields) =>
        (ReadText(path) ?? "").Split('\n')
            .Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Select(l => l.Split(':'))
            .Where(f => f.Length >= fields)
            .ToList();
}
