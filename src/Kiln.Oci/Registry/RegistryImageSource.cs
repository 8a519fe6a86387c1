using Kiln.Oci.Image;

namespace Kiln.Oci.Registry;

/// <summary>The images of one repository of a registry, as an <see cref="IImageSource"/>: a reference is resolved by
/// HEAD (a tag, or a digest), manifests are fetched by digest, blobs are streamed and checked against their digest
/// and size as they are read (<see cref="VerifiedBlobStream"/>), resuming a dropped download where it broke off.</summary>
public sealed class RegistryImageSource : IImageSource
{
    private readonly Dictionary<Digest, byte[]> _manifests = [];

    /// <param name="client">The registry's client; the caller keeps it and disposes it.</param>
    public RegistryImageSource(RegistryClient client, string repository)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentException.ThrowIfNullOrEmpty(repository);
        Client = client;
        Repository = repository;
    }

    public RegistryClient Client { get; }

    public string Repository { get; }

    public string Name => Client.Registry + "/" + Repository;

    /// <summary>The descriptor <paramref name="reference"/> (a tag or a digest; null: <c>latest</c>) names.</summary>
    /// <exception cref="RegistryException">The registry has no such manifest (<see cref="RegistryErrorKind.NotFound"/>),
    /// or could not be asked.</exception>
    public async Task<Descriptor> ResolveAsync(string? reference, CancellationToken cancellationToken = default)
    {
        reference ??= "latest";
        return await Client.ResolveManifestAsync(Repository, reference, cancellationToken).ConfigureAwait(false)
            ?? throw RegistryException.NotFound(Name, $"manifest {reference}");
    }

    public async Task<Stream> OpenBlobAsync(Descriptor blob, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(blob);
        return await Client.OpenBlobAsync(Repository, blob, cancellationToken: cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Fetches a manifest or index by digest. The bytes are kept: the copy reads each document once to plan
    /// and the sink may want it again to tag it.</summary>
    public async Task<Stream> OpenManifestAsync(Descriptor manifest, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        byte[]? bytes;
        lock (_manifests)
        {
            _manifests.TryGetValue(manifest.Digest, out bytes);
        }
        if (bytes is null)
        {
            bytes = (await Client.GetManifestAsync(Repository, manifest.Digest.Value, cancellationToken).ConfigureAwait(false)).Content;
            lock (_manifests)
            {
                _manifests[manifest.Digest] = bytes;
            }
        }
        return new MemoryStream(bytes, writable: false);
    }
}
