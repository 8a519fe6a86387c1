using Kiln.Oci.Image;

namespace Kiln.Oci.Archives;

/// <summary>The images of an archive read in place: an oci-archive (or a docker-archive Kiln or Docker 25 wrote, which
/// holds the OCI layout beside <c>manifest.json</c>) through <see cref="OciArchiveReader"/>, or any docker-archive,
/// by its <c>RepoTags</c>, through <see cref="DockerArchiveReader"/>.</summary>
public sealed class ArchiveImageSource : IImageSource, IDisposable
{
    private readonly Func<string?, Descriptor> _resolve;
    private readonly Func<Descriptor, Stream> _open;
    private readonly IDisposable _reader;

    private ArchiveImageSource(string name, Func<string?, Descriptor> resolve, Func<Descriptor, Stream> open, IDisposable reader)
    {
        Name = name;
        _resolve = resolve;
        _open = open;
        _reader = reader;
    }

    /// <summary>Opens an oci-archive and reads its index; a reference is a tag (<c>org.opencontainers.image.ref.name</c>).</summary>
    /// <exception cref="ArchiveException">Missing, not a tar, or not an image layout; the message names the file.</exception>
    public static ArchiveImageSource Open(string path)
    {
        var reader = OciArchiveReader.Open(path);
        return new(reader.Path, reader.FindTagged, reader.OpenBlob, reader);
    }

    /// <summary>Opens a docker-archive and reads its <c>manifest.json</c>; a reference is one of an image's
    /// <c>RepoTags</c> (<c>REPO[:TAG]</c>).</summary>
    /// <exception cref="ArchiveException">Missing, not a tar, or no <c>manifest.json</c>; the message names the file.</exception>
    public static ArchiveImageSource OpenDocker(string path)
    {
        var reader = DockerArchiveReader.Open(path);
        return new(reader.Path, reader.FindImage, reader.OpenBlob, reader);
    }

    /// <summary>The archive's path, as its messages name it.</summary>
    public string Name { get; }

    /// <summary>The manifest or index <paramref name="reference"/> names in the archive, or with none the archive's only image.</summary>
    /// <exception cref="ArchiveException">No such image, or several and no reference.</exception>
    public Task<Descriptor> ResolveAsync(string? reference, CancellationToken cancellationToken = default) =>
        Task.FromResult(_resolve(reference));

    /// <summary>Opens a blob, checking its size; readers check the digest as they consume it.</summary>
    public Task<Stream> OpenBlobAsync(Descriptor blob, CancellationToken cancellationToken = default) =>
        Task.FromResult(_open(blob));

    public void Dispose() => _reader.Dispose();
}
