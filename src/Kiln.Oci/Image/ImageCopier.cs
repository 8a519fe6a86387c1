namespace Kiln.Oci.Image;

/// <summary>The one copy routine between a source and a sink: import, export, push and pull are each a call of
/// <see cref="CopyAsync"/>. Every manifest and index is read and checked first; then configs and layers are copied
/// (several at once, those the sink has skipped), each checked by the sink as it arrives; manifests follow the
/// blobs they name, indexes their manifests, and the name comes last.</summary>
public static class ImageCopier
{
    /// <summary>Copies the manifest or index <paramref name="descriptor"/> of <paramref name="source"/> with
    /// everything it names into <paramref name="sink"/>.</summary>
    /// <exception cref="ImageException">A document or blob that does not match its descriptor, or no image for the
    /// platform asked for; sources and sinks may throw their own exceptions too.</exception>
    public static async Task<ImageCopySummary> CopyAsync(IImageSource source, Descriptor descriptor, IImageSink sink,
        ImageCopyOptions? options = null, IProgress<ImageCopyEvent>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(descriptor);
        ArgumentNullException.ThrowIfNull(sink);
        options ??= new ImageCopyOptions();
        if (options.Parallelism < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "parallelism must be at least 1");
        }
        var root = descriptor;
        if (options.Platform is { } platform && MediaTypes.IsIndex(descriptor.MediaType))
        {
            root = await IndexSelection.ResolveAsync(descriptor, platform,
                (d, ct) => ImageReader.ReadDocumentAsync(source, d, ct), source.Name, cancellationToken).ConfigureAwait(false);
        }
        var contents = await PlanAsync(source, root, options.Name, cancellationToken).ConfigureAwait(false);
        var tally = new Tally();
        if (sink is ISequentialImageSink sequential)
        {
            await CopySequentiallyAsync(source, sequential, contents, tally, progress, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await Parallel.ForEachAsync(contents.Blobs, new ParallelOptions
            {
                MaxDegreeOfParallelism = options.Parallelism,
                CancellationToken = cancellationToken,
            }, (blob, ct) => new ValueTask(CopyBlobAsync(source, sink, blob, tally, progress, ct))).ConfigureAwait(false);
            foreach (var (manifest, bytes) in contents.Manifests)
            {
                await sink.WriteManifestAsync(manifest, bytes, cancellationToken).ConfigureAwait(false);
                tally.Manifests++;
                progress?.Report(new ImageCopyEvent(ImageCopyEventKind.ManifestWritten, manifest, manifest.Size));
            }
            if (options.Name is { } name)
            {
                await sink.TagAsync(name, root, cancellationToken).ConfigureAwait(false);
            }
        }
        return new ImageCopySummary
        {
            Root = root,
            BytesCopied = tally.Bytes,
            BlobsCopied = tally.Copied,
            BlobsSkipped = tally.Skipped,
            BlobsMounted = tally.Mounted,
            ManifestsWritten = tally.Manifests,
        };
    }

    /// <summary>Reads every manifest and index under <paramref name="root"/> (checked) and lists the blobs they name.</summary>
    private static async Task<ImageContents> PlanAsync(IImageSource source, Descriptor root, string? name, CancellationToken ct)
    {
        var manifests = new List<(Descriptor, ReadOnlyMemory<byte>)>();
        var seenManifests = new HashSet<Digest>();
        var blobs = new List<Descriptor>();
        var seenBlobs = new Dictionary<Digest, Descriptor>();

        async Task WalkAsync(Descriptor d, int depth)
        {
            if (!seenManifests.Add(d.Digest))
            {
                return;
            }
            if (MediaTypes.IsManifest(d.MediaType))
            {
                var image = await ImageReader.ReadManifestAsync(source, d, ct).ConfigureAwait(false);
                foreach (var blob in image.Layers.Select(l => l.Descriptor).Prepend(image.Manifest.Config))
                {
                    if (seenBlobs.TryGetValue(blob.Digest, out var seen))
                    {
                        if (seen.Size != blob.Size)
                        {
                            throw ImageException.TwoSizes(source.Name, d, seen, blob);
                        }
                        continue;
                    }
                    seenBlobs[blob.Digest] = blob;
                    blobs.Add(blob);
                }
                manifests.Add((d, image.RawManifest));
                return;
            }
            if (!MediaTypes.IsIndex(d.MediaType))
            {
                throw ImageException.NotAnImage(source.Name, d);
            }
            if (depth == IndexSelection.MaxDepth)
            {
                throw ImageException.TooDeep(source.Name, IndexSelection.MaxDepth);
            }
            var index = await ImageReader.ReadIndexAsync(source, d, ct).ConfigureAwait(false);
            foreach (var child in index.Index.Manifests)
            {
                await WalkAsync(child, depth + 1).ConfigureAwait(false);
            }
            manifests.Add((d, index.RawIndex));
        }

        await WalkAsync(root, 0).ConfigureAwait(false);
        return new ImageContents { Root = root, Name = name, Manifests = manifests, Blobs = blobs };
    }

    private static async Task CopyBlobAsync(IImageSource source, IImageSink sink, Descriptor blob, Tally tally,
        IProgress<ImageCopyEvent>? progress, CancellationToken ct)
    {
        if (await sink.HasBlobAsync(blob, ct).ConfigureAwait(false))
        {
            Interlocked.Increment(ref tally.Skipped);
            progress?.Report(new ImageCopyEvent(ImageCopyEventKind.Skipped, blob, blob.Size));
            return;
        }
        if (sink is IBlobMountSink mounter && await mounter.TryMountAsync(blob, source, ct).ConfigureAwait(false))
        {
            Interlocked.Increment(ref tally.Mounted);
            progress?.Report(new ImageCopyEvent(ImageCopyEventKind.Mounted, blob, blob.Size));
            return;
        }
        await WriteBlobAsync(source, sink, blob, tally, progress, ct).ConfigureAwait(false);
    }

    private static async Task WriteBlobAsync(IImageSource source, IImageSink sink, Descriptor blob, Tally tally,
        IProgress<ImageCopyEvent>? progress, CancellationToken ct)
    {
        progress?.Report(new ImageCopyEvent(ImageCopyEventKind.Started, blob, 0));
        var stream = await source.OpenBlobAsync(blob, ct).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            Stream content = progress is null ? stream
                : stream is IVerifiedBlobStream verified ? new VerifiedProgressStream(stream, verified, blob, progress)
                : new ProgressStream(stream, blob, progress);
            await sink.WriteBlobAsync(blob, content, ct).ConfigureAwait(false);
        }
        Interlocked.Increment(ref tally.Copied);
        Interlocked.Add(ref tally.Bytes, blob.Size);
        progress?.Report(new ImageCopyEvent(ImageCopyEventKind.Copied, blob, blob.Size));
    }

    private static async Task CopySequentiallyAsync(IImageSource source, ISequentialImageSink sink, ImageContents contents, Tally tally,
        IProgress<ImageCopyEvent>? progress, CancellationToken ct)
    {
        var order = await sink.BeginAsync(contents, ct).ConfigureAwait(false);
        var documents = contents.Manifests.ToDictionary(m => m.Descriptor.Digest, m => m.Bytes);
        foreach (var d in order)
        {
            ct.ThrowIfCancellationRequested();
            if (documents.TryGetValue(d.Digest, out var bytes))
            {
                await sink.WriteManifestAsync(d, bytes, ct).ConfigureAwait(false);
                tally.Manifests++;
                progress?.Report(new ImageCopyEvent(ImageCopyEventKind.ManifestWritten, d, d.Size));
            }
            else
            {
                await WriteBlobAsync(source, sink, d, tally, progress, ct).ConfigureAwait(false);
            }
        }
        await sink.CompleteAsync(ct).ConfigureAwait(false);
    }

    private sealed class Tally
    {
        public long Bytes;
        public int Copied;
        public int Skipped;
        public int Mounted;
        public int Manifests;
    }

    /// <summary>A <see cref="ProgressStream"/> over a stream that checks its bytes, which says so to the sink.</summary>
    private sealed class VerifiedProgressStream(Stream inner, IVerifiedBlobStream verified, Descriptor blob, IProgress<ImageCopyEvent> progress)
        : ProgressStream(inner, blob, progress), IVerifiedBlobStream
    {
        public Descriptor Descriptor => verified.Descriptor;

        public bool Verified => verified.Verified;
    }

    /// <summary>Reports the bytes read through it, about every mebibyte and at the end.</summary>
    private class ProgressStream(Stream inner, Descriptor blob, IProgress<ImageCopyEvent> progress) : Stream
    {
        private const long Every = 1 << 20;
        private long _read;
        private long _reported;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _read; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));

        public override int Read(Span<byte> buffer) => Count(inner.Read(buffer));

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            Count(await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        private int Count(int n)
        {
            _read += n;
            if (_read - _reported >= Every || (n == 0 && _read != _reported))
            {
                _reported = _read;
                progress.Report(new ImageCopyEvent(ImageCopyEventKind.Progress, blob, _read));
            }
            return n;
        }

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
