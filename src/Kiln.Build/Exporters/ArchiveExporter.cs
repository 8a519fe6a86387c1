using System.Diagnostics;
using Kiln.Build.Store;
using Kiln.Oci;
using Kiln.Oci.Archives;
using Kiln.Oci.Image;

namespace Kiln.Build.Exporters;

/// <summary>Writes a stored image as an oci-archive, a docker-archive or a rootfs tar. The file appears at the
/// output path only once complete; a failure or a cancel leaves nothing there.</summary>
/// <remarks>The archives hold the stored blobs unchanged, so the manifest digest in them is the image's own. Their
/// outer tar takes its mtimes from <see cref="ExportRequest.Epoch"/>; a rootfs keeps the mtimes its layers hold
/// (already clamped when Kiln built them) and uses the epoch only for parent directories no layer lists.
/// The oci-archive is tagged with the image name; the docker-archive is named <c>NAME:latest</c> unless the name
/// has a tag.</remarks>
public static class ArchiveExporter
{
    public static bool Handles(ExportFormat format) => format is ExportFormat.OciArchive or ExportFormat.DockerArchive or ExportFormat.Rootfs;

    public static async Task<ExportResult> ExportAsync(KilnStore store, ExportRequest request, IProgress<ExportEvent>? progress,
        CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(request);
        if (!Handles(request.Format))
        {
            throw new ArgumentException($"{ExportFormats.Name(request.Format)} is not an archive format", nameof(request));
        }
        var clock = Stopwatch.StartNew();
        var format = request.Format;
        void Report(string message) => progress?.Report(new ExportEvent(request.ImageName, format, message));

        // Shared, as builds take it: garbage collection (exclusive) cannot remove blobs while they are read.
        using var storeLock = store.AcquireLock(exclusive: false, ct);
        using var output = new OutputFile(request.OutputPath);
        try
        {
            await using (var file = new FileStream(output.PartialPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
            {
                switch (format)
                {
                    case ExportFormat.Rootfs:
                        var (manifest, config) = await store.Content.ReadImageAsync(request.Manifest.Digest, ct).ConfigureAwait(false);
                        await new RootfsWriter(store, request.ImageName, Report)
                            .WriteAsync(manifest, config, file, request.Epoch.ToUnixTimeSeconds(), ct).ConfigureAwait(false);
                        break;
                    default:
                        var source = new StoreImageSource(store);
                        var copied = new CopyProgress(Report);
                        var options = new ArchiveOptions { Epoch = request.Epoch };
                        if (format == ExportFormat.OciArchive)
                        {
                            await OciArchiveWriter.WriteAsync(file, source, request.Manifest, request.ImageName, options, copied, ct).ConfigureAwait(false);
                        }
                        else
                        {
                            await DockerArchiveWriter.WriteAsync(file, source, request.Manifest, request.ImageName, options, copied, ct).ConfigureAwait(false);
                        }
                        break;
                }
                await file.FlushAsync(ct).ConfigureAwait(false);
            }
            ct.ThrowIfCancellationRequested();
            output.Commit();
        }
        catch (ArchiveException ex)
        {
            throw ExportException.Failed($"writing the {ExportFormats.Name(format)} of {request.ImageName}: {ex.Message}", ex);
        }
        catch (StoreException ex)
        {
            throw ExportException.Failed($"writing the {ExportFormats.Name(format)} of {request.ImageName}: {ex.Message}", ex);
        }
        Report("written to " + output.Target);
        return new ExportResult
        {
            OutputPath = output.Target,
            Format = format,
            Bytes = new FileInfo(output.Target).Length,
            Elapsed = clock.Elapsed,
        };
    }

    /// <summary>Reports each blob as its copy starts, on the copying thread (the archive sink takes one at a time).</summary>
    private sealed class CopyProgress(Action<string> report) : IProgress<ImageCopyEvent>
    {
        public void Report(ImageCopyEvent value)
        {
            if (value.Kind == ImageCopyEventKind.Started)
            {
                report($"copying blob {value.Descriptor.Digest.Short}");
            }
        }
    }
}
