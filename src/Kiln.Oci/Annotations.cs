namespace Kiln.Oci;

public static class Annotations
{
    public const string RefName = "org.opencontainers.image.ref.name";
    public const string Created = "org.opencontainers.image.created";

    /// <summary>The image's full name (<c>REPO:TAG</c>) in an archive's index, as containerd and <c>docker save</c>
    /// write it. Podman reads it before <see cref="RefName"/>, which holds only the tag.</summary>
    public const string ImageName = "io.containerd.image.name";
}
