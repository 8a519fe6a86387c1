namespace Kiln.Oci.Image;

/// <summary>A layer (or any blob an image names): its descriptor and a way to open it. Nothing is read until
/// <see cref="OpenAsync"/>; its reader checks the digest as it consumes the bytes.</summary>
public interface ILayer
{
    Descriptor Descriptor { get; }

    Task<Stream> OpenAsync(CancellationToken cancellationToken = default);
}

/// <summary>One image: its manifest (read and checked), its config read on demand, its layers opened lazily.</summary>
public interface IImage
{
    /// <summary>The manifest's descriptor: its digest is the image's.</summary>
    Descriptor Descriptor { get; }

    Manifest Manifest { get; }

    /// <summary>The manifest's bytes, which hash to <see cref="Descriptor"/>'s digest.</summary>
    ReadOnlyMemory<byte> RawManifest { get; }

    IReadOnlyList<ILayer> Layers { get; }

    /// <summary>The config's bytes (at most 4 MiB), checked against the manifest's config descriptor.</summary>
    Task<byte[]> RawConfigAsync(CancellationToken cancellationToken = default);

    /// <summary>The config parsed as an image config.</summary>
    /// <exception cref="ImageException">It is not one.</exception>
    Task<ImageConfig> ConfigAsync(CancellationToken cancellationToken = default);
}

/// <summary>An image index (or Docker manifest list): the images of several platforms, possibly through nested indexes.</summary>
public interface IImageIndex
{
    Descriptor Descriptor { get; }

    ImageIndex Index { get; }

    ReadOnlyMemory<byte> RawIndex { get; }

    /// <summary>The image for <paramref name="platform"/>, through nested indexes.</summary>
    /// <exception cref="ImageException">No entry fits; the message names the platforms there are.</exception>
    Task<IImage> ImageAsync(Platform platform, CancellationToken cancellationToken = default);
}

/// <summary>Reads images and indexes out of an <see cref="IImageSource"/>, checking each document against its
/// descriptor (digest, size, at most 4 MiB) as it is read.</summary>
public static class ImageReader
{
    /// <summary>A manifest or index, read whole and checked.</summary>
    public static Task<byte[]> ReadDocumentAsync(IImageSource source, Descriptor descriptor, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        return IndexSelection.ReadDocumentAsync(descriptor, source.OpenManifestAsync, source.Name, cancellationToken);
    }

    /// <summary>The image behind <paramref name="descriptor"/>: itself if it names a manifest, else the image for
    /// <paramref name="platform"/> of the index it names.</summary>
    public static async Task<IImage> ReadImageAsync(IImageSource source, Descriptor descriptor, Platform platform,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        var manifest = await IndexSelection.ResolveAsync(descriptor, platform,
            (d, ct) => ReadDocumentAsync(source, d, ct), source.Name, cancellationToken).ConfigureAwait(false);
        return await ReadManifestAsync(source, manifest, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The image whose manifest <paramref name="descriptor"/> names.</summary>
    public static async Task<IImage> ReadManifestAsync(IImageSource source, Descriptor descriptor, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(descriptor);
        if (!MediaTypes.IsManifest(descriptor.MediaType))
        {
            throw ImageException.NotAnImage(source.Name, descriptor);
        }
        var bytes = await ReadDocumentAsync(source, descriptor, cancellationToken).ConfigureAwait(false);
        Manifest manifest;
        try
        {
            manifest = OciJson.DeserializeManifest(bytes);
        }
        catch (System.Text.Json.JsonException ex)
        {
            throw ImageException.BadDocument(source.Name, "manifest", descriptor, ex);
        }
        return new SourceImage(source, descriptor, manifest, bytes);
    }

    public static async Task<IImageIndex> ReadIndexAsync(IImageSource source, Descriptor descriptor, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(descriptor);
        if (!MediaTypes.IsIndex(descriptor.MediaType))
        {
            throw ImageException.NotAnImage(source.Name, descriptor);
        }
        var bytes = await ReadDocumentAsync(source, descriptor, cancellationToken).ConfigureAwait(false);
        return new SourceIndex(source, descriptor, IndexSelection.ParseIndex(bytes, descriptor, source.Name), bytes);
    }

    private sealed class SourceImage(IImageSource source, Descriptor descriptor, Manifest manifest, byte[] bytes) : IImage
    {
        private byte[]? _config;

        public Descriptor Descriptor => descriptor;
        public Manifest Manifest => manifest;
        public ReadOnlyMemory<byte> RawManifest => bytes;
        public IReadOnlyList<ILayer> Layers { get; } = [.. manifest.Layers.Select(l => new SourceLayer(source, l))];

        public async Task<byte[]> RawConfigAsync(CancellationToken cancellationToken = default) =>
            _config ??= await IndexSelection.ReadDocumentAsync(manifest.Config, source.OpenBlobAsync, source.Name, cancellationToken).ConfigureAwait(false);

        public async Task<ImageConfig> ConfigAsync(CancellationToken cancellationToken = default)
        {
            var raw = await RawConfigAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                return OciJson.DeserializeConfig(raw);
            }
            catch (System.Text.Json.JsonException ex)
            {
                throw ImageException.BadDocument(source.Name, "config", manifest.Config, ex);
            }
        }
    }

    private sealed class SourceLayer(IImageSource source, Descriptor descriptor) : ILayer
    {
        public Descriptor Descriptor => descriptor;
        public Task<Stream> OpenAsync(CancellationToken cancellationToken = default) => source.OpenBlobAsync(descriptor, cancellationToken);
    }

    private sealed class SourceIndex(IImageSource source, Descriptor descriptor, ImageIndex index, byte[] bytes) : IImageIndex
    {
        public Descriptor Descriptor => descriptor;
        public ImageIndex Index => index;
        public ReadOnlyMemory<byte> RawIndex => bytes;

        public Task<IImage> ImageAsync(Platform platform, CancellationToken cancellationToken = default) =>
            ReadImageAsync(source, IndexSelection.Select(index, descriptor, platform, source.Name), platform, cancellationToken);
    }
}
