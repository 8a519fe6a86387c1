using Kiln.Build.Execution;
using Kiln.Build.Exporters;
using Kiln.Build.Testing;
using Kiln.Build.Testing.Vm;
using Kiln.Build.Testing.Spec;

namespace Kiln.Cli;

/// <summary><c>kiln test IMAGE</c>: runs the image's spec again against the image the store names.</summary>
internal static class TestCommand
{
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        var a = Arguments.Parse(args, "test", ["--json", "--verbose", "--help", "--scratch-on-disk"], ["--phase", "--junit", "--file", "--disk", "--accel", "--vm-timeout"],
            new Dictionary<string, string> { ["-f"] = "--file", ["-v"] = "--verbose", ["-h"] = "--help" });
        if (a.Has("--help"))
        {
            stdout.WriteLine(Help.Test);
            return ExitCodes.Ok;
        }
        if (a.Positionals.Count != 1)
        {
            throw new UsageException("kiln test: takes one IMAGE (see 'kiln test --help')");
        }
        if (ServiceCommands.IsService(a.Last("--file") ?? ".", a.Positionals[0]))
        {
            return await ServiceCommands.TestAsync(a, stdout, stderr, ct).ConfigureAwait(false);
        }
        TestPhase? phase = a.Last("--phase") switch
        {
            null => null,
            "bake" => TestPhase.Bake,
            "boot" => TestPhase.Boot,
            "vm" => TestPhase.Vm,
            var other => throw new UsageException($"kiln test: --phase takes bake, boot or vm, not '{other}'"),
        };
        if (phase != TestPhase.Vm && (a.Last("--disk") ?? a.Last("--accel") ?? a.Last("--vm-timeout")) is not null)
        {
            throw new UsageException("kiln test: --disk, --accel and --vm-timeout go with --phase vm");
        }
        PathArguments.Definition("test", a.Last("--file") ?? ".");
        PathArguments.Output("test", "--junit", a.Last("--junit"));
        bool json = a.Has("--json");
        var renderer = new BuildRenderer(json ? stderr : stdout, a.Has("--verbose"));
        var options = new TestOptions
        {
            UseCache = false,
            Phase = phase,
            Epoch = Cli.Epoch(),
            MemoryScratchSize = a.Has("--scratch-on-disk") ? null : Cli.ScratchSize(),
        };
        var result = phase == TestPhase.Vm
            ? await VmTestAsync(a, renderer, ct).ConfigureAwait(false)
            : await StoredImageTests.RunAsync(a.Last("--file") ?? ".", Cli.StoreRoot(), a.Positionals[0], options, renderer, ct,
                Kiln.Build.Provenance.RetestProvenance.RecordAsync).ConfigureAwait(false);
        if (a.Last("--junit") is { } junit)
        {
            JUnitReport.WriteFile(junit, result.Phases);
        }
        if (json)
        {
            stdout.WriteLine(JsonOutput.Write(w =>
            {
                w.WriteStartObject();
                w.WriteString("image", a.Positionals[0]);
                w.WriteBoolean("passed", result.Passed);
                JsonOutput.Tests(w, result.Phases);
                w.WriteEndObject();
            }));
        }
        if (!result.Passed)
        {
            BuildRenderer.Failures(stderr, result.Phases);
            return ExitCodes.Failed;
        }
        if (result.Phases.Count == 0)
        {
            stderr.WriteLine($"kiln test: {a.Positionals[0]} has no checks for that phase");
        }
        return ExitCodes.Ok;
    }

    /// <summary>The vm phase: the image's raw disk (exported to a store temp file, or the disk file given with --disk,
    /// raw or qcow2) booted under qemu with the spec's command, service, port and http checks.</summary>
    private static Task<GateResult> VmTestAsync(Arguments a, BuildRenderer renderer, CancellationToken ct)
    {
        var (vm, export) = VmSetup(a);
        return StoredImageTests.RunVmAsync(a.Last("--file") ?? ".", Cli.StoreRoot(), a.Positionals[0], vm, export, renderer, ct,
            Kiln.Build.Provenance.RetestProvenance.RecordAsync);
    }

    /// <summary>The VM options (--accel, --vm-timeout) and where the raw disk comes from (--disk, or an export of the
    /// stored image), for an image's or a service's vm phase.</summary>
    internal static (VmOptions Vm, RawDiskExport Export) VmSetup(Arguments a)
    {
        var accel = a.Last("--accel") switch
        {
            null or "auto" => VmAccelerator.Auto,
            "kvm" => VmAccelerator.Kvm,
            "tcg" => VmAccelerator.Tcg,
            var other => throw new UsageException($"kiln test: --accel takes auto, kvm or tcg, not '{other}'"),
        };
        TimeSpan? timeout = null;
        if (a.Last("--vm-timeout") is { } t)
        {
            timeout = int.TryParse(t, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var seconds) && seconds > 0
                ? TimeSpan.FromSeconds(seconds)
                : throw new UsageException($"kiln test: --vm-timeout takes a number of seconds, not '{t}'");
        }
        var given = a.Last("--disk");
        var disk = given is null ? null : Path.GetFullPath(given);
        if (disk is not null && !File.Exists(disk))
        {
            throw new UsageException($"kiln test: --disk {given}: no such file");
        }
        if (!Environment.IsPrivilegedProcess)
        {
            throw new UsageException("kiln test --phase vm writes into a copy of the disk's filesystem and mounts the image's layers: run it as root");
        }
        var vm = new VmOptions { Accelerator = accel, BootTimeout = timeout };
        RawDiskExport export = disk is null
            ? (store, image, manifest, path, token) => Exporter.ExportAsync(store,
                new ExportRequest { ImageName = image, Manifest = manifest, Format = ExportFormat.Raw, OutputPath = path }, null, token)
            : (_, _, _, path, token) => Kiln.Build.Exporters.Disk.DiskFileCopy.ToRawAsync(disk, path, token);
        return (vm, export);
    }
}
