using System.Text;

namespace Kiln.Oci.Archives;

/// <summary>The files of a tar archive, found in one pass over its headers and read in place: each regular file by its
/// normalised name (offset and size), symbolic links followed, as both archive readers need.</summary>
internal sealed class TarFiles : IDisposable
{
    private const int Block = 512;
    private const long MaxDocumentBytes = 4 << 20;
    private const int MaxLinkDepth = 8;
    private readonly FileStream _file;
    private readonly Dictionary<string, (long Offset, long Size)> _files;
    private readonly Dictionary<string, string> _links;

    private TarFiles(string path, FileStream file)
    {
        Path = path;
        _file = file;
        (_files, _links) = Scan(path, file);
    }

    /// <summary>The archive file.</summary>
    public string Path { get; }

    /// <summary>Opens and scans a tar. Throws <see cref="ArchiveException"/> naming the file when it is missing,
    /// unreadable or not a tar.</summary>
    public static TarFiles Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        FileStream file;
        try
        {
            file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ArchiveException($"{path}: no such file", ex);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new ArchiveException($"{path}: cannot be read ({ex.Message})", ex);
        }
        try
        {
            return new TarFiles(path, file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public bool Contains(string name) => Find(name) is not null;

    /// <summary>The size of file <paramref name="name"/> (links followed), or null when there is none.</summary>
    public long? SizeOf(string name) => Find(name)?.Size;

    /// <summary>Opens file <paramref name="name"/> (links followed) for reading; null when there is none. Positional
    /// reads of the handle opened once: files come from the tar that was scanned, even if the path is replaced
    /// meanwhile, and several can be read at once.</summary>
    public Stream? OpenFile(string name) =>
        Find(name) is { } entry ? new SliceStream(_file.SafeFileHandle, entry.Offset, entry.Size) : null;

    /// <summary>A small file read whole (at most 4 MiB).</summary>
    /// <exception cref="ArchiveException">No such file, or a larger one.</exception>
    public byte[] ReadDocument(string name)
    {
        var (offset, size) = Find(name) ?? throw new ArchiveException($"{Path}: {name} is missing");
        if (size > MaxDocumentBytes)
        {
            throw new ArchiveException($"{Path}: {name} has {size} bytes; at most 4 MiB are allowed");
        }
        var bytes = new byte[size];
        RandomAccess.Read(_file.SafeFileHandle, bytes, offset);
        return bytes;
    }

    public void Dispose() => _file.Dispose();

    private (long Offset, long Size)? Find(string name)
    {
        name = Normalise(name);
        for (int depth = 0; depth <= MaxLinkDepth; depth++)
        {
            if (_files.TryGetValue(name, out var entry))
            {
                return entry;
            }
            if (!_links.TryGetValue(name, out var target))
            {
                return null;
            }
            name = target;
        }
        return null;
    }

    /// <summary>Every regular file of the tar by normalised name, last one winning as tar extraction would, and every
    /// symbolic link by name with its target resolved against the link's folder.</summary>
    private static (Dictionary<string, (long, long)>, Dictionary<string, string>) Scan(string path, FileStream file)
    {
        var files = new Dictionary<string, (long, long)>(StringComparer.Ordinal);
        var links = new Dictionary<string, string>(StringComparer.Ordinal);
        var header = new byte[Block];
        string? longName = null;
        string? longLink = null;
        string? paxPath = null;
        string? paxLink = null;
        long? paxSize = null;
        long length = file.Length;
        long pos = 0;
        while (true)
        {
            if (pos + Block > length)
            {
                throw new ArchiveException(pos == 0 ? $"{path}: not a tar archive (empty or too short)" : $"{path}: truncated tar archive (no end marker)");
            }
            file.Position = pos;
            file.ReadExactly(header);
            if (header.AsSpan().IndexOfAnyExcept((byte)0) < 0)
            {
                return (files, links);
            }
            if (!ChecksumOk(header))
            {
                throw new ArchiveException(pos == 0 ? $"{path}: not a tar archive" : $"{path}: corrupt tar header at byte {pos}");
            }
            char type = (char)header[156];
            long size = paxSize ?? Number(header.AsSpan(124, 12), path);
            long data = pos + Block;
            if (size < 0 || data + size > length)
            {
                throw new ArchiveException($"{path}: truncated tar archive (an entry runs past the end)");
            }
            pos = data + (size + Block - 1) / Block * Block;
            switch (type)
            {
                case 'x' or 'L' or 'K':
                    if (size > 1 << 20)
                    {
                        throw new ArchiveException($"{path}: extended tar header larger than 1 MiB");
                    }
                    var bytes = new byte[size];
                    file.Position = data;
                    file.ReadExactly(bytes);
                    switch (type)
                    {
                        case 'L':
                            longName = CString(bytes);
                            break;
                        case 'K':
                            longLink = CString(bytes);
                            break;
                        default:
                            (paxPath, paxLink, paxSize) = Pax(bytes, path);
                            break;
                    }
                    continue;
                case 'g':
                    continue;
            }
            string name = Normalise(paxPath ?? longName ?? HeaderName(header));
            string link = paxLink ?? longLink ?? CString(header.AsSpan(157, 100));
            paxPath = longName = paxLink = longLink = null;
            paxSize = null;
            if (type is '0' or '\0' or '7')
            {
                files[name] = (data, size);
                links.Remove(name);
            }
            else if (type == '2')
            {
                links[name] = Resolve(name, link);
                files.Remove(name);
            }
        }
    }

    private static string Normalise(string name)
    {
        while (name.StartsWith("./", StringComparison.Ordinal))
        {
            name = name[2..];
        }
        return name.TrimStart('/');
    }

    /// <summary>A link's target as a name in the tar: relative targets are taken from the link's folder, and
    /// <c>..</c> never climbs above the tar's root.</summary>
    private static string Resolve(string linkName, string target)
    {
        var parts = new List<string>();
        int slash = linkName.LastIndexOf('/');
        if (!target.StartsWith('/') && slash > 0)
        {
            parts.AddRange(linkName[..slash].Split('/', StringSplitOptions.RemoveEmptyEntries));
        }
        foreach (var part in target.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (part == "..")
            {
                if (parts.Count > 0)
                {
                    parts.RemoveAt(parts.Count - 1);
                }
            }
            else if (part != ".")
            {
                parts.Add(part);
            }
        }
        return string.Join('/', parts);
    }

    private static string HeaderName(byte[] header)
    {
        string name = CString(header.AsSpan(0, 100));
        if (header.AsSpan(257, 5).SequenceEqual("ustar"u8))
        {
            string prefix = CString(header.AsSpan(345, 155));
            if (prefix.Length > 0)
            {
                name = prefix + "/" + name;
            }
        }
        return name;
    }

    private static bool ChecksumOk(byte[] header)
    {
        long stored;
        try
        {
            stored = Number(header.AsSpan(148, 8), "");
        }
        catch (ArchiveException)
        {
            return false;
        }
        long sum = 0;
        for (int i = 0; i < Block; i++)
        {
            sum += i is >= 148 and < 156 ? (byte)' ' : header[i];
        }
        return sum == stored;
    }

    private static string CString(ReadOnlySpan<byte> field)
    {
        int nul = field.IndexOf((byte)0);
        return Encoding.UTF8.GetString(nul >= 0 ? field[..nul] : field);
    }

    private static long Number(ReadOnlySpan<byte> field, string path)
    {
        if ((field[0] & 0x80) != 0)
        {
            long v = field[0] & 0x3F;
            for (int i = 1; i < field.Length; i++)
            {
                v = (v << 8) | field[i];
            }
            return (field[0] & 0x40) != 0 ? -1 : v;
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
            if (b is < (byte)'0' or > (byte)'7')
            {
                throw new ArchiveException($"{path}: not a tar archive (bad number in a header)");
            }
            result = (result << 3) | (long)(b - '0');
        }
        return result;
    }

    private static (string? Path, string? Link, long? Size) Pax(byte[] data, string archive)
    {
        string? path = null;
        string? link = null;
        long? size = null;
        int pos = 0;
        while (pos < data.Length)
        {
            int space = Array.IndexOf(data, (byte)' ', pos);
            if (space < 0 || !int.TryParse(Encoding.ASCII.GetString(data, pos, space - pos), out int len)
                || len <= space - pos || pos + len > data.Length)
            {
                throw new ArchiveException($"{archive}: malformed PAX header");
            }
            var record = Encoding.UTF8.GetString(data, space + 1, pos + len - space - 2);
            int eq = record.IndexOf('=');
            if (eq > 0)
            {
                var value = record[(eq + 1)..];
                switch (record[..eq])
                {
                    case "path":
                        path = value;
                        break;
                    case "linkpath":
                        link = value;
                        break;
                    case "size" when long.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var s):
                        size = s;
                        break;
                }
            }
            pos += len;
        }
        return (path, link, size);
    }
}
