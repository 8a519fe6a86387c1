using Kiln.Build.Definition;
using Kiln.Build.Execution;
using Kiln.Build.Store;
using Kiln.Build.Testing;

namespace Kiln.Build.Exporters;

/// <summary>One output of a build (an entry of an image's <c>outputs:</c>) and what became of it.</summary>
public sealed record OutputResult
{
    public required string Image { get; init; }
    public required string Format { get; init; }
    public required string Path { get; init; }

    /// <summary>The file already held this image in this form: nothing was written.</summary>
    public bool UpToDate { get; init; }

    /// <summary>A disk made from the previous disk by applying only the changed layers.</summary>
    public bool Incremental { get; init; }

    public long Bytes { get; init; }
    public TimeSpan Duration { get; init; }

    /// <summary>Disks: how the disk was made, or why it was built in full.</summary>
    public string? Detail { get; init; }

    /// <summary>qcow2: the file written before was updated in place with only what changed.</summary>
    public bool Patched { get; init; }

    /// <summary>The bytes of disk content written to the file (all of it, or the patched ranges); 0 when up to date.</summary>
    public long BytesWritten { get; init; }
}

public sealed record ExportStarted(string Image, string Format, string Path) : BuildEvent(Image);

public sealed record ExportProgressed(string Image, string Format, string Message) : BuildEvent(Image);

public sealed record ExportFinished(string Image, OutputResult Result) : BuildEvent(Image);

/// <summary>A build, its tests, then the <c>outputs:</c> of every image that passed.</summary>
public static class ExportingBuilder
{
    public static async Task<(BuildResult Build, IReadOnlyList<OutputResult> Outputs)> BuildAsync(string definitionPath, string storeRoot,
        BuildOptions options, bool writeOutputs, IProgress<BuildEvent>? progress = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var build = await Minimize.MinimizingBuilder.BuildAsync(definitionPath, storeRoot, options, progress, ct,
            (file, specs, store, gate) => new Provenance.ProvenanceGate(store, gate, file, specs, Provenance.ProvenanceGate.Tool, progress)).ConfigureAwait(false);
        if (!writeOutputs)
        {
            return (build, []);
        }
        // The definition as planned for this build: not read again.
        var file = build.File ?? DefinitionLoader.Load(definitionPath);
        var wanted = build.Images
            .Where(i => !i.Rejected)
            .Select(i => (Result: i, Definition: file.Images.First(d => d.Name == i.Name)))
            .Where(x => x.Definition.Outputs.Count > 0)
            .ToList();
        if (wanted.Count == 0)
        {
            return (build, []);
        }
        var results = new List<OutputResult>();
        using var store = KilnStore.Open(storeRoot);
        using var storeLock = store.AcquireLock(exclusive: false, ct);
        foreach (var (image, definition) in wanted)
        {
            foreach (var output in definition.Outputs)
            {
                results.Add(await WriteAsync(store, file, image, output, options, progress, ct).ConfigureAwait(false));
            }
        }
        return (build, results);
    }

    /// <summary>Where an output goes when its entry names no path: <c>out/NAME.EXT</c> beside kiln.yaml.</summary>
    public static string DefaultPath(KilnFile file, string image, ExportFormat format) =>
        Path.GetFullPath(DefinitionSyntax.DefaultOutputPath(image, ExportFormats.Name(format)), file.ContextDir);

    private static async Task<OutputResult> WriteAsync(KilnStore store, KilnFile file, ImageResult image, OutputDefinition output,
        BuildOptions options, IProgress<BuildEvent>? progress, CancellationToken ct)
    {
        if (!ExportFormats.TryParse(output.Format, out var format))
        {
            throw ExportException.BadInput($"{output.Mark}: unknown output format `{output.Format}`");
        }
        var path = output.Path ?? DefaultPath(file, image.Name, format);
        if (output.Path is null)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        }
        var what = output.SizeBytes is { } size ? $"{output.Format} size={size}" : output.Format;
        if (format == ExportFormat.Vagrant)
        {
            // A box holds more than its image: when what Kiln adds changes, a box of the same image is written again
            // (boxes written before Kiln added anything are not current either).
            what += " " + Disk.VagrantAccess.Version;
        }
        var manifest = image.Manifest.Digest.Value;
        var previous = new OutputStamps(store).Unchanged(path, what);
        if (previous?.Manifest == manifest)
        {
            var current = new OutputResult { Image = image.Name, Format = output.Format, Path = path, UpToDate = true, Bytes = new FileInfo(path).Length };
            progress?.Report(new ExportFinished(image.Name, current));
            return current;
        }
        progress?.Report(new ExportStarted(image.Name, output.Format, path));
        var request = new ExportRequest
        {
            ImageName = image.Name,
            Manifest = image.Manifest,
            Format = format,
            OutputPath = path,
            DiskSizeBytes = output.SizeBytes,
            OutputHoldsDisk = previous?.Disk,
            Epoch = options.Epoch,
            StepOptions = options,
        };
        var events = progress is null ? null : new ForwardingProgress(e => progress.Report(new ExportProgressed(e.Image, output.Format, e.Message)));
        ExportResult exported;
        try
        {
            exported = await Exporter.ExportAsync(store, request, events, ct).ConfigureAwait(false);
        }
        catch (ExportException e)
        {
            throw new ExportException($"{image.Name}: output {output.Format} ({output.Mark}): {e.Message}", e.IsBadInput, e);
        }
        await new OutputStamps(store).RecordAsync(path, manifest, what, ct, exported.DiskContentId).ConfigureAwait(false);
        var result = new OutputResult
        {
            Image = image.Name,
            Format = output.Format,
            Path = path,
            Incremental = exported.Incremental,
            Bytes = exported.Bytes,
            Duration = exported.Elapsed,
            Detail = exported.Detail,
            Patched = exported.Patched,
            BytesWritten = exported.BytesWritten,
        };
        progress?.Report(new ExportFinished(image.Name, result));
        return result;
    }
}

/// <summary>Reports synchronously on the reporting thread (unlike <see cref="Progress{T}"/>, which posts), so events keep their order.</summary>
internal sealed class ForwardingProgress(Action<ExportEvent> report) : IProgress<ExportEvent>
{
    public void Report(ExportEvent value) => report(value);
}
