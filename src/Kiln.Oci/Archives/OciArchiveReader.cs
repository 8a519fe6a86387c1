using System.Text;
using Kiln.Oci.Image;

namespace Kiln.Oci.Archives;

/// <summary>Reads an oci-archive in place: one pass over the tar headers finds every file's offset, then
/// <c>index.json</c> names the image and blobs are read straight from the tar, without unpacking it.</summary>
public sealed class OciArchiveReader : IDisposable
{
    private const int Block = 512;
    private const long MaxDocumentBytes = 4 << 20;
    private readonly FileStream _file;
    private readonly Dictionary<string, (long Offset, long Size)> _files;

    private OciArchiveReader(string path, FileStream file, Dictionary<string, (long, long)> files, ImageIndex index)
    {
        Path = path;
        _file = file;
        _files = files;
        Index = index;
    }

    /// <summary>The archive file.</summary>
    public string Path { get; }

    /// <summary>The archive's <c>index.json</c>.</summary>
    public ImageIndex Index { get; }

    /// <summary>Opens an archive and reads its index. Throws <see cref="ArchiveException"/> naming the file when it is
    /// missing, not a tar, or not an OCI image layout.</summary>
    public static OciArchiveReader Open(string path)
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
            var files = Scan(path, file);
            if (!files.ContainsKey("oci-layout") || !files.ContainsKey("index.json"))
            {
                throw new ArchiveException($"{path}: not an oci-archive (the tar has no oci-layout and index.json)");
            }
            var layout = ReadDocument(path, file, files, "oci-layout");
            if (!Encoding.UTF8.GetString(layout).Contains("imageLayoutVersion", StringComparison.Ordinal))
            {
                throw new ArchiveException($"{path}: oci-layout does not name an imageLayoutVersion");
            }
            ImageIndex index;
            try
            {
                index = OciJson.DeserializeIndex(ReadDocument(path, file, files, "index.json"));
            }
            catch (System.Text.Json.JsonException ex)
            {
                throw new ArchiveException($"{path}: index.json is not valid: {ex.Message}", ex);
            }
            return new OciArchiveReader(path, file, files, index);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>The image manifest tagged <paramref name="refName"/> (<c>org.opencontainers.image.ref.name</c>), or
    /// with no name given of the archive's only entry. When that entry is an index (or an index of indexes), the
    /// manifest in it for <paramref name="platform"/> (by default <see cref="Platform.Host"/>).</summary>
    /// <exception cref="ArchiveException">No such tag, or several entries and no tag.</exception>
    /// <exception cref="ImageException">No image for the platform, or a document that is not what its descriptor says.</exception>
    public Descriptor FindManifest(string? refName, Platform? platform = null)
    {
        var tagged = FindTagged(refName);
        return IndexSelection.Resolve(tagged, platform ?? Platform.Host, d => IndexSelection.ReadDocument(d, OpenBlob, Path), Path);
    }

    /// <summary>The entry tagged <paramref name="refName"/>, or with no name given the archive's only entry (a manifest
    /// or an index).</summary>
    /// <exception cref="ArchiveException">No such tag, or several entries and no tag.</exception>
    public Descriptor FindTagged(string? refName)
    {
        // Artifacts attached to an image (referrers: an SBOM, test results) are entries too, but not images to take.
        var manifests = Index.Manifests.Where(m => m.ArtifactType is null).ToList();
        if (refName is null)
        {
            if (manifests.Count != 1)
            {
                var names = manifests.Select(m => m.Annotations?.GetValueOrDefault(Annotations.RefName)).OfType<string>().ToList();
                throw new ArchiveException(manifests.Count == 0
                    ? $"{Path}: index.json lists no image"
                    : $"{Path}: holds {manifests.Count} images; name one with oci-archive:{Path}:TAG (tags: {(names.Count == 0 ? "none" : string.Join(", ", names))})");
            }
            return manifests[0];
        }
        var matches = manifests.Where(m => m.Annotations?.GetValueOrDefault(Annotations.RefName) == refName).ToList();
        if (matches.Count != 1)
        {
            var names = manifests.Select(m => m.Annotations?.GetValueOrDefault(Annotations.RefName)).OfType<string>();
            throw new ArchiveException(matches.Count == 0
                ? $"{Path}: no image tagged '{refName}' (tags: {string.Join(", ", names)})"
                : $"{Path}: {matches.Count} images are tagged '{refName}'");
        }
        return matches[0];
    }

    public bool HasBlob(Digest digest) => _files.ContainsKey(BlobName(digest));

    /// <summary>Opens a blob for reading, checking that its size matches <paramref name="descriptor"/>. The content
    /// is not hashed here: readers check the digest as they consume it.</summary>
    public Stream OpenBlob(Descriptor descriptor)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        if (!_files.TryGetValue(BlobName(descriptor.Digest), out var entry))
        {
            throw new ArchiveException($"{Path}: blob {descriptor.Digest} is missing");
        }
        if (entry.Size != descriptor.Size)
        {
            throw new ArchiveException($"{Path}: blob {descriptor.Digest} is {entry.Size} bytes, its descriptor says {descriptor.Size}");
        }
        // Positional reads of the handle opened once: blobs come from the file that was scanned, even if the path
        // is replaced meanwhile, and several blobs can be read at once.
        return new SliceStream(_file.SafeFileHandle, entry.Offset, entry.Size);
    }

    public void Dispose() => _file.Dispose();

    private static string BlobName(Digest digest) => "blobs/sha256/" + digest.Hex;

    private static byte[] ReadDocument(string path, FileStream file, Dictionary<string, (long Offset, long Size)> files, string name)
    {
        var (offset, size) = files[name];
        if (size > MaxDocumentBytes)
        {
            throw new ArchiveException($"{path}: {name} has {size} bytes; at most 4 MiB are allowed");
        }
        var bytes = new byte[size];
        file.Position = offset;
        file.ReadExactly(bytes);
        return bytes;
    }

    /// <summary>Every regular file of the tar by normalised name, last one winning as tar extraction would.</summary>
    private static Dictionary<string, (long, long)> Scan(string path, FileStream file)
    {
        var files = new Dictionary<string, (long, long)>(StringComparer.Ordinal);
        var header = new byte[Block];
        string? longName = null;
        string? paxPath = null;
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
                return files;
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
                case 'x' or 'L':
                    if (size > 1 << 20)
                    {
                        throw new ArchiveException($"{path}: extended tar header larger than 1 MiB");
                    }
                    var bytes = new byte[size];
                    file.Position = data;
                    file.ReadExactly(bytes);
                    if (type == 'L')
                    {
                        longName = CString(bytes);
                    }
                    else
                    {
                        (paxPath, paxSize) = Pax(bytes, path);
                    }
                    continue;
                case 'g' or 'K':
                    continue;
            }
            string name = paxPath ?? longName ?? HeaderName(header);
            paxPath = longName = null;
            paxSize = null;
            if (type is '0' or '\0' or '7')
            {
                files[Normalise(name)] = (data, size);
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

    private static (string? Path, long? Size) Pax(byte[] data, string archive)
    {
        string? path = null;
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
                    case "size" when long.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var s):
                        size = s;
                        break;
                }
            }
            pos += len;
        }
        return (path, size);
    }
}
