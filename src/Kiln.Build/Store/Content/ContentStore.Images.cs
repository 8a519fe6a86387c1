using System.Text.Json;
using Kiln.Oci;

namespace Kiln.Build.Store.Content;

public sealed partial class ContentStore
{
    /// <summary>Writes the config and manifest blobs (canonical JSON) of <paramref name="state"/>; its layer blobs
    /// must already be in the store. Returns the manifest descriptor.</summary>
    public async Task<Descriptor> WriteImageAsync(ImageState state, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(state);
        state.CheckLayersMatchDiffIds();
        foreach (var layer in state.Layers)
        {
            if (!HasBlob(layer.Digest))
            {
                throw StoreException.InvalidImage($"layer {layer.Digest} is not in the store; write it before the image");
            }
        }
        var (config, manifest) = ImageDocuments(state);
        await WriteBlobAsync(config, MediaTypes.ImageConfig, ct).ConfigureAwait(false);
        return await WriteBlobAsync(manifest, MediaTypes.ImageManifest, ct).ConfigureAwait(false);
    }

    /// <summary>The descriptor of the manifest <see cref="WriteImageAsync"/> writes for <paramref name="state"/>, without
    /// writing anything (e.g. to look up or start its tests while the image is written).</summary>
    public static Descriptor DescribeImage(ImageState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        var (_, manifest) = ImageDocuments(state);
        return new Descriptor { MediaType = MediaTypes.ImageManifest, Digest = Digest.Compute(manifest), Size = manifest.Length };
    }

    private static (byte[] Config, byte[] Manifest) ImageDocuments(ImageState state)
    {
        var config = OciJson.Serialize(state.Config);
        var manifest = new Manifest
        {
            Config = new Descriptor { MediaType = MediaTypes.ImageConfig, Digest = Digest.Compute(config), Size = config.Length },
            Layers = state.Layers,
        };
        return (config, OciJson.Serialize(manifest));
    }

    public async Task<(Manifest Manifest, ImageConfig Config)> ReadImageAsync(Digest manifest, CancellationToken ct = default)
    {
        var manifestBytes = await ReadBlobAsync(manifest, ct).ConfigureAwait(false);
        Manifest m;
        try
        {
            m = OciJson.DeserializeManifest(manifestBytes);
        }
        catch (JsonException e)
        {
            throw StoreException.CorruptDocument($"manifest {manifest}", BlobPath(manifest), e);
        }
        var configBytes = await ReadBlobAsync(m.Config.Digest, ct).ConfigureAwait(false);
        if (configBytes.Length != m.Config.Size)
        {
            throw StoreException.InvalidImage($"manifest {manifest}: config {m.Config.Digest} has {configBytes.Length} bytes, the manifest says {m.Config.Size}");
        }
        ImageConfig c;
        try
        {
            c = OciJson.DeserializeConfig(configBytes);
        }
        catch (JsonException e)
        {
            throw StoreException.CorruptDocument($"config {m.Config.Digest}", BlobPath(m.Config.Digest), e);
        }
        return (m, c);
    }

    /// <summary>Reads the state (layers and config) of a stored image, e.g. a tagged base image.</summary>
    public async Task<ImageState> ReadImageStateAsync(Digest manifest, CancellationToken ct = default)
    {
        var (m, c) = await ReadImageAsync(manifest, ct).ConfigureAwait(false);
        return new ImageState { Layers = m.Layers, Config = c };
    }
}
