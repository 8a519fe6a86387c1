using Kiln.Build.Definition;
using Kiln.Build.Execution;
using Kiln.Build.Exporters;
using Kiln.Build.Store;

namespace Kiln.Cli;

/// <summary><c>kiln export IMAGE --format F [-o PATH]</c>: writes a stored image as an archive, a root filesystem tar,
/// a bootable disk or a Vagrant box.</summary>
internal static class ExportCommand
{
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        var a = Arguments.Parse(args, "export", ["--json", "--full", "--help"], ["--format", "--output", "--size"],
            new Dictionary<string, string> { ["-o"] = "--output", ["-f"] = "--format", ["-h"] = "--help" });
        if (a.Has("--help"))
        {
            stdout.WriteLine(Help.Export);
            return ExitCodes.Ok;
        }
        if (a.Positionals.Count != 1)
        {
            throw new UsageException("kiln export: takes one IMAGE (see 'kiln export --help')");
        }
        var name = a.Positionals[0];
        var formatName = a.Last("--format") ?? throw new UsageException($"kiln export: --format is required ({ExportFormats.Names})");
        if (!ExportFormats.TryParse(formatName, out var format))
        {
            throw new UsageException($"kiln export: unknown format '{formatName}' (expected {ExportFormats.Names})");
        }
        long? size = null;
        if (a.Last("--size") is { } sizeText)
        {
            if (!ExportFormats.IsDisk(format))
            {
                throw new UsageException($"kiln export: --size applies to disk formats (raw, qcow2, vagrant), not {formatName}");
            }
            size = SizeText.Parse(sizeText) ?? throw new UsageException($"kiln export: --size '{sizeText}' is not a size (e.g. 4G, 512M)");
        }
        var output = Path.GetFullPath(a.Last("--output") ?? ExportFormats.DefaultFileName(name, format));
        if (ExportFormats.IsDisk(format) && !Environment.IsPrivilegedProcess)
        {
            throw new UsageException("kiln export: disk formats mount the image's layers in a private namespace: run as root");
        }

        var root = Cli.StoreRoot();
        if (!File.Exists(Path.Combine(root, "oci-layout")))
        {
            throw new UsageException($"kiln export: no store at {root} (build an image first)");
        }
        using var store = KilnStore.Open(root);
        using var storeLock = store.AcquireLock(exclusive: false, ct);
        var manifest = store.Names.TryGetTag(name) ?? throw new UsageException($"kiln export: no image named '{name}' in {root} (see 'kiln images')");
        var progress = new ForwardingLines(stderr, name, formatName);
        var request = new ExportRequest
        {
            ImageName = name,
            Manifest = manifest,
            Format = format,
            OutputPath = output,
            DiskSizeBytes = size,
            AllowIncremental = !a.Has("--full"),
            Epoch = Cli.Epoch(),
            StepOptions = new BuildOptions { MemoryScratchSize = Cli.ScratchSize() },
        };
        var result = await Exporter.ExportAsync(store, request, progress, ct).ConfigureAwait(false);
        var line = new OutputResult
        {
            Image = name,
            Format = formatName,
            Path = result.OutputPath,
            Incremental = result.Incremental,
            Bytes = result.Bytes,
            Duration = result.Elapsed,
            Detail = result.Detail,
        };
        if (a.Has("--json"))
        {
            stdout.WriteLine(JsonOutput.Write(w => JsonOutput.Output(w, line)));
        }
        else
        {
            stdout.WriteLine($"{name} {formatName}: {BuildRenderer.OutputLine(line)}");
        }
        return ExitCodes.Ok;
    }

    /// <summary>Export progress as plain lines on stderr (stdout keeps the result).</summary>
    private sealed class ForwardingLines(TextWriter output, string image, string format) : IProgress<ExportEvent>
    {
        private readonly object _gate = new();

        public void Report(ExportEvent value)
        {
            lock (_gate)
            {
                output.WriteLine($"{image} {format}: {value.Message}");
            }
        }
    }
}
