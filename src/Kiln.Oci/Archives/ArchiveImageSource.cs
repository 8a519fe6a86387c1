using Kiln.Oci.Image;

namespace Kiln.Oci.Archives;

/// <summary>The images of an oci-archive (or of a docker-archive Kiln or Docker 25 wrote, which holds the OCI layout
/// beside <c>manifest.json</c>), read in place through <see cref="OciArchiveReader"/>.</summary>
public sealed class ArchiveImageSource : IImageSource, IDisposable
{
    private readonly OciArchiveReader _reader;

    private ArchiveImageSource(OciArchiveReader reader) => _reader = reader;

    /// <summary>Opens the archive and reads its index.</summary>
    /// <exception cref="ArchiveException">Missing, not a tar, or not an image layout; the message names the file.</exception>
    public static ArchiveImageSource Open(string path) => new(OciArchiveReader.Open(path));

    /// <summary>The archive's path, as its messages name it.</summary>
    public string Name => _reader.Path;

    /// <inheritdoc cref="OciArchiveReader.FindTagged"/>
    public Task<Descriptor> ResolveAsync(string? reference, CancellationToken cancellationToken = default) =>
        Task.FromResult(_reader.FindTagged(reference));

    /// <inheritdoc cref="OciArchiveReader.OpenBlob"/>
    public Task<Stream> OpenBlobAsync(Descriptor blob, CancellationToken cancellationToken = default) =>
        Task.FromResult(_reader.OpenBlob(blob));

    public void Dispose() => _reader.Dispose();
}
