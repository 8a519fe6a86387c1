using System.Collections.Concurrent;
using System.Text;
using Kiln.Oci.Image;

namespace Kiln.Oci.Tests.Image;

/// <summary>Images held in memory: blobs by digest and tags, read through <see cref="IImageSource"/>.</summary>
internal sealed class MemorySource : IImageSource
{
    public Dictionary<Digest, byte[]> Blobs { get; } = [];
    public Dictionary<string, Descriptor> Tags { get; } = [];

    public string Name => "memory";

    public Descriptor Add(byte[] bytes, string mediaType, Platform? platform = null)
    {
        var d = Digest.Compute(bytes);
        Blobs[d] = bytes;
        return new Descriptor { MediaType = mediaType, Digest = d, Size = bytes.Length, Platform = platform };
    }

    /// <summary>An image of <paramref name="layers"/> gzip-less tar-typed layers, each its text's bytes.</summary>
    public Descriptor Image(string label, int layers = 2, Platform? platform = null)
    {
        var descs = Enumerable.Range(0, layers).Select(i => Add(Encoding.UTF8.GetBytes($"{label} layer {i} " + new string('x', 1000 * i)), MediaTypes.LayerTar)).ToList();
        var config = Add(OciJson.Serialize(new ImageConfig { RootFs = new RootFs { DiffIds = [.. descs.Select(d => d.Digest)] } }), MediaTypes.ImageConfig);
        return Add(OciJson.Serialize(new Manifest { Config = config, Layers = descs }), MediaTypes.ImageManifest, platform);
    }

    public Descriptor Index(params Descriptor[] entries) => Add(OciJson.Serialize(new ImageIndex { Manifests = entries }), MediaTypes.ImageIndex);

    public Task<Descriptor> ResolveAsync(string? reference, CancellationToken cancellationToken = default) =>
        Task.FromResult(Tags[reference ?? "latest"]);

    public Task<Stream> OpenBlobAsync(Descriptor blob, CancellationToken cancellationToken = default) =>
        Blobs.TryGetValue(blob.Digest, out var bytes)
            ? Task.FromResult<Stream>(new MemoryStream(bytes, writable: false))
            : throw ImageException.MissingBlob(Name, blob.Digest);
}

/// <summary>A sink that keeps what it is given, checks it as a real sink must, records the order of writes and how
/// many blobs were written at once.</summary>
internal sealed class MemorySink : IImageSink
{
    private int _writing;

    public ConcurrentDictionary<Digest, byte[]> Blobs { get; } = new();
    public ConcurrentQueue<string> Log { get; } = new();
    public int MostAtOnce { get; private set; }
    public TimeSpan Delay { get; init; }

    public string Name => "memory-sink";

    public Task<bool> HasBlobAsync(Descriptor blob, CancellationToken cancellationToken = default) =>
        Task.FromResult(Blobs.TryGetValue(blob.Digest, out var b) && b.Length == blob.Size);

    public async Task WriteBlobAsync(Descriptor blob, Stream content, CancellationToken cancellationToken = default)
    {
        int now = Interlocked.Increment(ref _writing);
        lock (Log)
        {
            MostAtOnce = Math.Max(MostAtOnce, now);
        }
        try
        {
            await Task.Delay(Delay, cancellationToken);
            var ms = new MemoryStream();
            await BlobCopy.CopyAsync(content, ms, blob, Name, checkDigest: true, cancellationToken);
            Blobs[blob.Digest] = ms.ToArray();
            Log.Enqueue("blob " + blob.Digest.Short);
        }
        finally
        {
            Interlocked.Decrement(ref _writing);
        }
    }

    public Task WriteManifestAsync(Descriptor manifest, ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken = default)
    {
        Assert.Equal(manifest.Digest, Digest.Compute(bytes.Span));
        Blobs[manifest.Digest] = bytes.ToArray();
        Log.Enqueue("manifest " + manifest.Digest.Short);
        return Task.CompletedTask;
    }

    public Task TagAsync(string name, Descriptor manifest, CancellationToken cancellationToken = default)
    {
        Log.Enqueue("tag " + name + " " + manifest.Digest.Short);
        return Task.CompletedTask;
    }
}
