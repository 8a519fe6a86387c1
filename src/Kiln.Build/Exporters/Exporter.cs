using System.Diagnostics;
using Kiln.Build.Exporters.Disk;
using Kiln.Build.Store;

namespace Kiln.Build.Exporters;

/// <summary>Writes a stored image in one of the <see cref="ExportFormat"/>s.</summary>
public static class Exporter
{
    public static async Task<ExportResult> ExportAsync(KilnStore store, ExportRequest request, IProgress<ExportEvent>? progress = null,
        CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(request);
        var clock = Stopwatch.StartNew();
        var result = ExportFormats.IsDisk(request.Format)
            ? await DiskExporter.ExportAsync(store, request, progress, ct).ConfigureAwait(false)
            : await ArchiveExporter.ExportAsync(store, request, progress, ct).ConfigureAwait(false);
        return result with { Elapsed = clock.Elapsed };
    }
}
