using System.Formats.Tar;
using System.IO.Compression;
using System.Text;
using Kiln.Oci.Archives;
using Kiln.Oci.Image;

namespace Kiln.Oci.Tests.Archives;

/// <summary>A small image held in memory: one gzip layer per given file, a config and a manifest.</summary>
internal sealed class TestImage : IImageSource
{
    public TestImage(params (string Name, string Content)[] files)
    {
        var layers = new List<Descriptor>();
        var diffIds = new List<Digest>();
        foreach (var (name, content) in files)
        {
            var tar = new MemoryStream();
            using (var w = new TarWriter(tar, TarEntryFormat.Ustar, leaveOpen: true))
            {
                w.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, name)
                {
                    DataStream = new MemoryStream(Encoding.UTF8.GetBytes(content)),
                    Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
                    ModificationTime = DateTimeOffset.UnixEpoch,
                });
            }
            diffIds.Add(Digest.Compute(tar.ToArray()));
            var gz = new MemoryStream();
            using (var z = new GZipStream(gz, CompressionLevel.Fastest, leaveOpen: true))
            {
                z.Write(tar.ToArray());
            }
            layers.Add(Add(gz.ToArray(), MediaTypes.LayerGzip));
        }
        var config = Add(OciJson.Serialize(new ImageConfig { RootFs = new RootFs { DiffIds = diffIds } }), MediaTypes.ImageConfig);
        Manifest = Add(OciJson.Serialize(new Manifest { Config = config, Layers = layers }), MediaTypes.ImageManifest);
        Layers = layers;
        Config = config;
        DiffIds = diffIds;
    }

    public Dictionary<Digest, byte[]> Blobs { get; } = [];
    public Descriptor Manifest { get; }
    public Descriptor Config { get; }
    public IReadOnlyList<Descriptor> Layers { get; }
    public IReadOnlyList<Digest> DiffIds { get; }

    public string Name => "test";

    public Task<Descriptor> ResolveAsync(string? reference, CancellationToken cancellationToken = default) => Task.FromResult(Manifest);

    public Task<Stream> OpenBlobAsync(Descriptor blob, CancellationToken cancellationToken = default) =>
        Task.FromResult<Stream>(new MemoryStream(Blobs[blob.Digest], writable: false));

    public Descriptor Add(byte[] bytes, string mediaType)
    {
        var d = Digest.Compute(bytes);
        Blobs[d] = bytes;
        return new Descriptor { MediaType = mediaType, Digest = d, Size = bytes.Length };
    }

    public async Task<byte[]> OciArchiveAsync(string refName = "web", DateTimeOffset? epoch = null)
    {
        var ms = new MemoryStream();
        await OciArchiveWriter.WriteAsync(ms, this, Manifest, refName, new ArchiveOptions { Epoch = epoch ?? DateTimeOffset.UnixEpoch });
        return ms.ToArray();
    }

    /// <summary>The tar's entries in order: name, type, mode, uid, gid, mtime, and the content of small files.</summary>
    public static List<(string Name, TarEntryType Type, UnixFileMode Mode, int Uid, int Gid, DateTimeOffset MTime, byte[] Data)> Entries(byte[] archive)
    {
        var list = new List<(string, TarEntryType, UnixFileMode, int, int, DateTimeOffset, byte[])>();
        using var reader = new TarReader(new MemoryStream(archive));
        while (reader.GetNextEntry() is { } e)
        {
            var data = new MemoryStream();
            e.DataStream?.CopyTo(data);
            list.Add((e.Name, e.EntryType, e.Mode, e.Uid, e.Gid, e.ModificationTime, data.ToArray()));
        }
        return list;
    }
}
