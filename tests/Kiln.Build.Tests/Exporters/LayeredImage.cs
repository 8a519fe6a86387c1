using System.Formats.Tar;
using System.IO.Compression;
using System.Text;
using Kiln.Build.Store;
using Kiln.Build.Tests.Store;
using Kiln.Oci;

namespace Kiln.Build.Tests.Exporters;

/// <summary>Builds images in a <see cref="TestStore"/> from layers written entry by entry (whiteouts, links,
/// devices, xattrs), compressed with gzip or zstd.</summary>
internal static class LayeredImage
{
    public static async Task<ImageState> AddLayerAsync(this TestStore t, ImageState parent, Action<TarWriter> write, bool zstd = false)
    {
        var tar = new MemoryStream();
        using (var writer = new TarWriter(tar, TarEntryFormat.Pax, leaveOpen: true))
        {
            write(writer);
        }
        var bytes = tar.ToArray();
        var diffId = Digest.Compute(bytes);
        var compressed = new MemoryStream();
        if (zstd)
        {
            using var z = new ZstdSharp.CompressionStream(compressed, 3, leaveOpen: true);
            z.Write(bytes);
        }
        else
        {
            using var z = new GZipStream(compressed, CompressionLevel.Fastest, leaveOpen: true);
            z.Write(bytes);
        }
        var layer = await t.Store.Content.WriteBlobAsync(compressed.ToArray(), zstd ? MediaTypes.LayerZstd : MediaTypes.LayerGzip);
        return new ImageState
        {
            Layers = [.. parent.Layers, layer],
            Config = parent.Config with
            {
                RootFs = new RootFs { DiffIds = [.. parent.Config.RootFs.DiffIds, diffId] },
                History = [.. parent.Config.History, new HistoryEntry { Created = "1970-01-01T00:00:00Z", CreatedBy = "layer" }],
            },
        };
    }

    public const UnixFileMode Mode644 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
    public const UnixFileMode Mode755 = Mode644 | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;

    public static void File(this TarWriter w, string name, string content, UnixFileMode mode = Mode644, int uid = 0, int gid = 0,
        Dictionary<string, string>? xattrs = null)
    {
        var ext = xattrs?.ToDictionary(kv => "SCHILY.xattr." + kv.Key, kv => kv.Value);
        var e = ext is null ? new PaxTarEntry(TarEntryType.RegularFile, name) : new PaxTarEntry(TarEntryType.RegularFile, name, ext);
        e.DataStream = new MemoryStream(Encoding.UTF8.GetBytes(content));
        e.Mode = mode;
        e.Uid = uid;
        e.Gid = gid;
        e.ModificationTime = DateTimeOffset.FromUnixTimeSeconds(1000);
        w.WriteEntry(e);
    }

    public static void Dir(this TarWriter w, string name, UnixFileMode mode = Mode755, int uid = 0) =>
        w.WriteEntry(new PaxTarEntry(TarEntryType.Directory, name) { Mode = mode, Uid = uid, ModificationTime = DateTimeOffset.FromUnixTimeSeconds(1000) });

    public static void Link(this TarWriter w, TarEntryType type, string name, string target) =>
        w.WriteEntry(new PaxTarEntry(type, name) { LinkName = target, Mode = Mode755, ModificationTime = DateTimeOffset.FromUnixTimeSeconds(1000) });

    public static void CharDevice(this TarWriter w, string name, int major, int minor) =>
        w.WriteEntry(new PaxTarEntry(TarEntryType.CharacterDevice, name)
        {
            DeviceMajor = major,
            DeviceMinor = minor,
            Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite,
            ModificationTime = DateTimeOffset.FromUnixTimeSeconds(1000),
        });

    /// <summary>A tar's entries: "name type mode uid:gid -> link [xattrs] = content" per line, in order.</summary>
    public static List<string> Describe(string tarPath)
    {
        var lines = new List<string>();
        using var reader = new TarReader(System.IO.File.OpenRead(tarPath));
        while (reader.GetNextEntry() is { } e)
        {
            var line = new StringBuilder($"{e.Name} {e.EntryType} {Convert.ToString((int)e.Mode, 8)} {e.Uid}:{e.Gid}");
            if (e.EntryType is TarEntryType.SymbolicLink or TarEntryType.HardLink)
            {
                line.Append(" -> ").Append(e.LinkName);
            }
            if (e.EntryType is TarEntryType.CharacterDevice or TarEntryType.BlockDevice)
            {
                var dev = (PosixTarEntry)e;
                line.Append($" {dev.DeviceMajor},{dev.DeviceMinor}");
            }
            if (e is PaxTarEntry pax)
            {
                foreach (var (k, v) in pax.ExtendedAttributes.Where(kv => kv.Key.StartsWith("SCHILY.xattr.", StringComparison.Ordinal)).OrderBy(kv => kv.Key, StringComparer.Ordinal))
                {
                    line.Append($" [{k["SCHILY.xattr.".Length..]}={v}]");
                }
            }
            if (e.DataStream is not null)
            {
                line.Append(" = ").Append(new StreamReader(e.DataStream).ReadToEnd());
            }
            lines.Add(line.ToString());
        }
        return lines;
    }
}
