namespace Kiln.Oci;

/// <summary>How a layer blob is compressed.</summary>
public enum LayerCompression
{
    None,
    Gzip,
    Zstd,
}

public static class MediaTypes
{
    public const string ImageIndex = "application/vnd.oci.image.index.v1+json";
    public const string ImageManifest = "application/vnd.oci.image.manifest.v1+json";
    public const string ImageConfig = "application/vnd.oci.image.config.v1+json";
    public const string LayerTar = "application/vnd.oci.image.layer.v1.tar";
    public const string LayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
    public const string LayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd";

    // Docker's image manifest, version 2, schema 2: what `docker push` and many registries still serve.
    public const string DockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
    public const string DockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json";
    public const string DockerConfig = "application/vnd.docker.container.image.v1+json";
    public const string DockerLayerTar = "application/vnd.docker.image.rootfs.diff.tar";
    public const string DockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip";

    /// <summary>Not in Docker's schema, but written by BuildKit for zstd layers of Docker-typed images.</summary>
    public const string DockerLayerZstd = "application/vnd.docker.image.rootfs.diff.tar.zstd";

    public static bool IsLayer(string mediaType) => Compression(mediaType) is not null;

    /// <summary>How a layer of <paramref name="mediaType"/> is compressed; null when it is not a layer type Kiln reads.</summary>
    public static LayerCompression? Compression(string mediaType) => mediaType switch
    {
        LayerTar or DockerLayerTar => LayerCompression.None,
        LayerGzip or DockerLayerGzip => LayerCompression.Gzip,
        LayerZstd or DockerLayerZstd => LayerCompression.Zstd,
        _ => null,
    };

    /// <summary>The OCI media type of a layer of <paramref name="mediaType"/> (the same bytes), so that an image Kiln
    /// writes holds OCI types only.</summary>
    public static string OciLayer(string mediaType) => Compression(mediaType) switch
    {
        LayerCompression.None => LayerTar,
        LayerCompression.Gzip => LayerGzip,
        LayerCompression.Zstd => LayerZstd,
        _ => throw new ArgumentException($"'{mediaType}' is not a layer media type", nameof(mediaType)),
    };

    public static bool IsManifest(string mediaType) => mediaType is ImageManifest or DockerManifest;

    public static bool IsIndex(string mediaType) => mediaType is ImageIndex or DockerManifestList;

    public static bool IsConfig(string mediaType) => mediaType is ImageConfig or DockerConfig;
}
