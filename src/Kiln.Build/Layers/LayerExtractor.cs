using System.Buffers;
using System.IO.Compression;
using Kiln.Build.Native;
using Kiln.Oci;
using ZstdSharp;

namespace Kiln.Build.Layers;

/// <summary>Extracts an OCI layer into overlay lower-dir form, refusing anything that would leave the target.</summary>
public static partial class LayerExtractor
{
    /// <summary>Extracts <paramref name="blob"/> into <paramref name="targetDir"/> (created if missing; must be empty)
    /// and returns the diff ID. On failure everything it created is removed.</summary>
    public static Task<Digest> ExtractAsync(Stream blob, string mediaType, string targetDir,
        CancellationToken cancellationToken = default) =>
        ExtractAsync(blob, mediaType, targetDir, ExtractionOptions.Default, cancellationToken);

    /// <summary>Extracts within the limits of <paramref name="options"/>.</summary>
    /// <remarks>Entries apply in order and the last one at a path wins, whatever kinds they are. A whiteout only
    /// hides what lower layers hold (OCI): a whiteout and a file of the same layer at one path leave the file, a
    /// whiteout and a directory leave the directory opaque, in either order; an opaque marker acts the same
    /// wherever it stands among its siblings.</remarks>
    public static async Task<Digest> ExtractAsync(Stream blob, string mediaType, string targetDir,
        ExtractionOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(blob);
        if (!MediaTypes.IsLayer(mediaType))
        {
            throw new ArgumentException($"'{mediaType}' is not a layer media type", nameof(mediaType));
        }
        string root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(targetDir));
        bool created = false;
        if (Directory.Exists(root))
        {
            if (Directory.EnumerateFileSystemEntries(root).Any())
            {
                throw new IOException($"extraction target '{root}' is not empty");
            }
        }
        else
        {
            Directory.CreateDirectory(root);
            created = true;
        }
        try
        {
            return await Task.Run(() => Extract(blob, mediaType, root, options, cancellationToken), cancellationToken)
                .ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is InvalidDataException or ZstdException)
        {
            // A decompressor's complaint (corrupt or junk-followed data) is a bad layer like any other.
            Cleanup(root, created);
            throw LayerException.Wrap("decompressing layer", ex);
        }
        catch
        {
            Cleanup(root, created);
            throw;
        }
    }

    private static Digest Extract(Stream blob, string mediaType, string root, ExtractionOptions options, CancellationToken cancellationToken)
    {
        using Stream decompressed = MediaTypes.Compression(mediaType) switch
        {
            LayerCompression.Gzip => new GZipStream(blob, CompressionMode.Decompress, leaveOpen: true),
            LayerCompression.Zstd => new DecompressionStream(blob, leaveOpen: true),
            _ => new NonClosingStream(blob),
        };
        using var limited = new LimitedReadStream(decompressed, options.MaxUncompressedBytes);
        using var hashing = new HashingReadStream(limited);
        using var buffered = new BufferedStream(hashing, 1 << 20);
        var reader = new TarStreamReader(buffered);
        var extraction = new Extraction(root, reader);
        TarEntry? entry;
        long entries = 0;
        while ((entry = reader.Next()) is not null)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (++entries > options.MaxEntries)
            {
                throw LayerException.Corrupt($"more than {options.MaxEntries} entries (the limit for one layer)");
            }
            try
            {
                extraction.Apply(entry);
            }
            catch (IOException ex) when (ex is not LayerException)
            {
                throw LayerException.Wrap($"extracting layer entry '{entry.Name}'", ex);
            }
            catch (UnauthorizedAccessException ex)
            {
                throw LayerException.Wrap($"extracting layer entry '{entry.Name}'", ex);
            }
        }
        extraction.FinishDirectories();
        // The diff ID covers the trailing padding too; anything but zeros after the end marker is not tar.
        byte[] rest = ArrayPool<byte>.Shared.Rent(1 << 16);
        try
        {
            int n;
            while ((n = buffered.Read(rest, 0, rest.Length)) > 0)
            {
                if (rest.AsSpan(0, n).IndexOfAnyExcept((byte)0) >= 0)
                {
                    throw LayerException.Corrupt("data after the end-of-archive marker (trailing junk)");
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rest);
        }
        return Digest.FromHash(hashing.GetHash());
    }

    private static void Cleanup(string root, bool created)
    {
        try
        {
            if (LibC.TryLstat(root) is { IsDirectory: true })
            {
                foreach (string child in Directory.EnumerateFileSystemEntries(root))
                {
                    RemoveTree(child);
                }
                if (created)
                {
                    Directory.Delete(root);
                }
            }
        }
        catch (IOException)
        {
            // best effort: the original error matters more
        }
    }

    /// <summary>Removes a tree without ever following a symlink.</summary>
    internal static void RemoveTree(string path)
    {
        var st = LibC.TryLstat(path);
        if (st is null)
        {
            return;
        }
        if (st.Value.IsDirectory)
        {
            foreach (string child in Directory.EnumerateFileSystemEntries(path))
            {
                RemoveTree(child);
            }
            Directory.Delete(path);
        }
        else
        {
            File.Delete(path);
        }
    }
}
