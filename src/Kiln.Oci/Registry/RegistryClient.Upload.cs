using System.Net;
using System.Net.Http.Headers;

namespace Kiln.Oci.Registry;

public sealed partial class RegistryClient
{
    /// <summary>Pushes one blob: nothing when the registry has it, a cross-repository mount when
    /// <paramref name="mountFrom"/> names a repository of this registry that has it, else an upload (in chunks above
    /// <see cref="RegistryClientOptions.ChunkSize"/>). A dropped connection resumes from the offset the registry
    /// reports, or starts a new upload when it has lost the old one. <paramref name="open"/> opens the content
    /// (again for each try); it is read from its start, or seeked or skipped to the resume offset.</summary>
    public async Task<BlobPushResult> PushBlobAsync(string repository, Descriptor descriptor, Func<CancellationToken, Task<Stream>> open,
        string? mountFrom = null, IProgress<long>? progress = null, CancellationToken cancellationToken = default)
    {
        string where = Where(repository);
        if (await BlobSizeAsync(repository, descriptor.Digest, cancellationToken).ConfigureAwait(false) is not null)
        {
            return BlobPushResult.Present;
        }
        int attempts = Math.Max(1, Options.MaxAttempts);
        Uri? location = null;
        long offset = 0;
        Exception? last = null;
        bool mountTried = mountFrom is null || mountFrom == repository;
        for (int failure = 0; failure < attempts;)
        {
            try
            {
                if (location is null)
                {
                    (location, bool mounted) = await StartUploadAsync(repository, descriptor, mountTried ? null : mountFrom, cancellationToken).ConfigureAwait(false);
                    mountTried = true;
                    if (mounted)
                    {
                        return BlobPushResult.Mounted;
                    }
                    offset = 0;
                }
                else
                {
                    (location, offset) = await UploadStatusAsync(repository, descriptor, location, cancellationToken).ConfigureAwait(false);
                }
                long chunk = Options.ChunkSize > 0 && descriptor.Size > Options.ChunkSize ? Options.ChunkSize : 0;
                if (chunk == 0 && offset == 0)
                {
                    await PutAsync(repository, descriptor, location, open, 0, descriptor.Size, progress, cancellationToken).ConfigureAwait(false);
                    return BlobPushResult.Uploaded;
                }
                while (offset < descriptor.Size)
                {
                    long length = chunk == 0 ? descriptor.Size - offset : Math.Min(chunk, descriptor.Size - offset);
                    (location, offset) = await PatchAsync(repository, descriptor, location, open, offset, length, progress, cancellationToken).ConfigureAwait(false);
                }
                await PutAsync(repository, descriptor, location, open, offset, 0, progress, cancellationToken).ConfigureAwait(false);
                return BlobPushResult.Uploaded;
            }
            catch (Exception e) when (RetryPolicy.IsTransient(e, cancellationToken) || e is RegistryException { Kind: RegistryErrorKind.NotFound }
                || e is RegistryException { Status: HttpStatusCode.BadRequest or HttpStatusCode.RequestedRangeNotSatisfiable })
            {
                last = e;
                failure++;
                if (e is RegistryException { IsTransient: false })
                {
                    // The registry lost or refused the upload session (an upload that broke off mid-request leaves
                    // Distribution's offset out of step): the next try starts a new one.
                    location = null;
                }
                if (failure < attempts)
                {
                    await Task.Delay(Backoff(failure), cancellationToken).ConfigureAwait(false);
                }
            }
            catch (Exception e) when (e is not OperationCanceledException && e is not RegistryException { Kind: RegistryErrorKind.AuthenticationFailed })
            {
                throw RegistryException.PushFailed(where, descriptor.Digest, failure + 1, e);
            }
        }
        throw RegistryException.PushFailed(where, descriptor.Digest, attempts, last!);
    }

    /// <summary>Asks the registry to mount <paramref name="descriptor"/> into <paramref name="repository"/> from
    /// <paramref name="mountFrom"/>, another repository of it: true when it did (201). When it answers with an upload
    /// session instead (202: no such blob there, or no access), the session is cancelled and the caller uploads.</summary>
    public async Task<bool> TryMountBlobAsync(string repository, Descriptor descriptor, string mountFrom, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        ArgumentException.ThrowIfNullOrEmpty(mountFrom);
        if (mountFrom == repository)
        {
            return false;
        }
        var (location, mounted) = await StartUploadAsync(repository, descriptor, mountFrom, cancellationToken).ConfigureAwait(false);
        if (mounted)
        {
            return true;
        }
        try
        {
            using var response = await _transport.SendAsync(new RegistryRequest
            {
                Method = HttpMethod.Delete,
                Path = location.ToString(),
                What = $"cancelling the upload of blob {descriptor.Digest}",
                Repository = repository,
                Scopes = [Push(repository)],
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is RegistryException or HttpRequestException or IOException)
        {
            // The session is left to expire, as registries expire abandoned uploads.
        }
        return false;
    }

    private async Task<(Uri Location, bool Mounted)> StartUploadAsync(string repository, Descriptor descriptor, string? mountFrom, CancellationToken cancellationToken)
    {
        string path = $"v2/{repository}/blobs/uploads/"
            + (mountFrom is null ? "" : $"?mount={descriptor.Digest}&from={Uri.EscapeDataString(mountFrom)}");
        string what = mountFrom is null ? $"starting the upload of blob {descriptor.Digest}" : $"mounting blob {descriptor.Digest} from {mountFrom}";
        using var response = await _transport.SendAsync(new RegistryRequest
        {
            Method = HttpMethod.Post,
            Path = path,
            What = what,
            Repository = repository,
            Scopes = mountFrom is null ? [Push(repository)] : [Push(repository), Pull(mountFrom)],
            Content = (_, _) => Task.FromResult<HttpContent>(new ByteArrayContent([])),
        }, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.Created && mountFrom is not null)
        {
            return (null!, true);
        }
        if (response.StatusCode != HttpStatusCode.Accepted)
        {
            throw await _transport.ErrorAsync(response, Where(repository), what, cancellationToken).ConfigureAwait(false);
        }
        return (await LocationAsync(response, repository, what, cancellationToken).ConfigureAwait(false), false);
    }

    private async Task<Uri> LocationAsync(HttpResponseMessage response, string repository, string what, CancellationToken cancellationToken)
    {
        var location = response.Headers.Location
            ?? throw RegistryException.Protocol(Where(repository), $"{what}: the answer has no Location");
        return location.IsAbsoluteUri ? location : new Uri(await _transport.BaseAsync(cancellationToken).ConfigureAwait(false), location);
    }

    /// <summary>Where an upload stands: the registry's <c>Range: 0-LAST</c> of what it holds.</summary>
    private async Task<(Uri, long)> UploadStatusAsync(string repository, Descriptor descriptor, Uri location, CancellationToken cancellationToken)
    {
        string what = $"asking where the upload of blob {descriptor.Digest} stands";
        using var response = await _transport.SendAsync(new RegistryRequest
        {
            Method = HttpMethod.Get,
            Path = location.ToString(),
            What = what,
            Repository = repository,
            Scopes = [Push(repository)],
        }, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.NoContent && !response.IsSuccessStatusCode)
        {
            throw await _transport.ErrorAsync(response, Where(repository), what, cancellationToken).ConfigureAwait(false);
        }
        var next = response.Headers.Location is null ? location : await LocationAsync(response, repository, what, cancellationToken).ConfigureAwait(false);
        return (next, RangeEnd(response) ?? 0);
    }

    /// <summary>The offset after the last byte of a <c>Range: 0-N</c> answer (N+1), null without one.</summary>
    internal static long? RangeEnd(HttpResponseMessage response)
    {
        if (!response.Headers.TryGetValues("Range", out var values))
        {
            return null;
        }
        var text = values.FirstOrDefault() ?? "";
        if (text.StartsWith("bytes=", StringComparison.Ordinal))
        {
            text = text[6..];
        }
        int dash = text.IndexOf('-');
        return dash > 0 && long.TryParse(text[(dash + 1)..], out var end) ? end + 1 : null;
    }

    private async Task<(Uri, long)> PatchAsync(string repository, Descriptor descriptor, Uri location, Func<CancellationToken, Task<Stream>> open,
        long offset, long length, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        string what = $"uploading bytes {offset}-{offset + length - 1} of blob {descriptor.Digest}";
        using var response = await _transport.SendAsync(new RegistryRequest
        {
            Method = HttpMethod.Patch,
            Path = location.ToString(),
            What = what,
            Repository = repository,
            Scopes = [Push(repository)],
            Retry = false,
            Headers = [("Content-Range", $"{offset}-{offset + length - 1}")],
            Content = (watchdog, ct) => BodyAsync(open, offset, length, watchdog, progress, ct),
        }, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.Accepted)
        {
            throw await _transport.ErrorAsync(response, Where(repository), what, cancellationToken).ConfigureAwait(false);
        }
        var next = await LocationAsync(response, repository, what, cancellationToken).ConfigureAwait(false);
        long reached = RangeEnd(response) ?? offset + length;
        return (next, reached);
    }

    private async Task PutAsync(string repository, Descriptor descriptor, Uri location, Func<CancellationToken, Task<Stream>> open,
        long offset, long length, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        string what = $"uploading blob {descriptor.Digest}";
        var uri = location.ToString();
        uri += (uri.Contains('?') ? "&" : "?") + "digest=" + Uri.EscapeDataString(descriptor.Digest.Value);
        using var response = await _transport.SendAsync(new RegistryRequest
        {
            Method = HttpMethod.Put,
            Path = uri,
            What = what,
            Repository = repository,
            Scopes = [Push(repository)],
            Retry = false,
            Content = length == 0
                ? (_, _) => Task.FromResult<HttpContent>(new ByteArrayContent([]))
                : (watchdog, ct) => BodyAsync(open, offset, length, watchdog, progress, ct),
        }, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.Created && !response.IsSuccessStatusCode)
        {
            throw await _transport.ErrorAsync(response, Where(repository), what, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<HttpContent> BodyAsync(Func<CancellationToken, Task<Stream>> open, long offset, long length,
        CancellationTokenSource watchdog, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        var source = await open(cancellationToken).ConfigureAwait(false);
        try
        {
            if (offset > 0)
            {
                if (source.CanSeek)
                {
                    source.Seek(offset, SeekOrigin.Begin);
                }
                else
                {
                    await SkipAsync(source, offset, cancellationToken).ConfigureAwait(false);
                }
            }
        }
        catch
        {
            await source.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        var content = new StreamContent(new UploadContentStream(source, length, watchdog, Options.StallTimeout, progress), 256 << 10);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        content.Headers.ContentLength = length;
        return content;
    }

    private static async Task SkipAsync(Stream source, long count, CancellationToken cancellationToken)
    {
        var buffer = new byte[81920];
        while (count > 0)
        {
            int n = await source.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, count)), cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                throw new EndOfStreamException("the blob's source is shorter than the offset to resume from");
            }
            count -= n;
        }
    }
}
