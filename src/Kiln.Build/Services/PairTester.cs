using System.Diagnostics;
using System.Globalization;
using System.Text;
using Kiln.Build.Definition;
using Kiln.Build.Execution;
using Kiln.Build.Store;
using Kiln.Build.Testing;
using Kiln.Build.Testing.Boot;
using Kiln.Build.Testing.Spec;
using Kiln.Build.Testing.Vm;

namespace Kiln.Build.Services;

public sealed record PairTestOptions
{
    /// <summary>How long cloud-init is given to finish (fetch and install included).</summary>
    public TimeSpan CloudInitTimeout { get; init; } = TimeSpan.FromMinutes(3);

    /// <summary>The port Kiln serves the package on, inside the instance: its network namespace is new, so any port
    /// the service's own checks do not use is free.</summary>
    public int ServePort { get; init; } = 47101;

    /// <summary>As <see cref="TestOptions.MemoryScratchSize"/>.</summary>
    public string? MemoryScratchSize { get; init; } = "50%";

    public DateTimeOffset Now { get; init; } = DateTimeOffset.UtcNow;
}

public sealed record PairTestResult(PairRecord Record, TestPhaseReport Report);

/// <summary><c>kiln test SERVICE</c>: boots the service's image with systemd under systemd-nspawn, with the pair's
/// NoCloud seed in the instance's throwaway overlay and the package served by Kiln inside the instance's network
/// namespace; waits for cloud-init to install it, validates the user-data with the image's own <c>cloud-init
/// schema</c>, runs the image's spec and the service's spec (their command, service, port and http checks) in the
/// instance, stops it, and records the pair with its results.</summary>
public static class PairTester
{
    public const string Phase = "boot";
    public const string VmPhaseName = "vm";
    private const string OutputLog = "/var/log/cloud-init-output.log";

    public static async Task<PairTestResult> TestAsync(string definitionPath, string storeRoot, string serviceName, PairTestOptions options,
        IProgress<BuildEvent>? progress = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var (service, image, imageSpec, serviceSpec, checks) = Load(definitionPath, serviceName,
            "kiln test mounts overlayfs and creates namespaces: run it as root");
        using var store = KilnStore.Open(storeRoot);
        using var storeLock = store.AcquireLock(exclusive: false, ct);
        var pair = PairGate.Current(store, service);
        var manifest = store.Names.TryGetTag(service.Image)!;
        var state = await store.Content.ReadImageStateAsync(manifest.Digest, ct).ConfigureAwait(false);
        var package = await store.Content.ReadBlobAsync(pair.Package, ct).ConfigureAwait(false);
        var url = new Uri($"http://127.0.0.1:{options.ServePort.ToString(CultureInfo.InvariantCulture)}/{service.Name}.deb");
        var seed = CloudInitSeed.For(service, pair, url);

        var clock = Stopwatch.StartNew();
        var reports = new List<CheckReport>();
        void Finished(CheckReport r)
        {
            reports.Add(r);
            progress?.Report(new CheckFinished(service.Name, Phase, r));
        }
        progress?.Report(new TestPhaseStarted(service.Name, Phase, checks.Count + 2));
        var instanceOptions = new InstanceOptions
        {
            Systemd = true,
            MemoryScratchSize = options.MemoryScratchSize,
            Files =
            [
                KeyValuePair.Create($"{CloudInitSeed.SeedDir}/user-data", Encoding.UTF8.GetBytes(seed.UserData)),
                KeyValuePair.Create($"{CloudInitSeed.SeedDir}/meta-data", Encoding.UTF8.GetBytes(seed.MetaData)),
            ],
        };
        Instance? instance = null;
        try
        {
            try
            {
                instance = await Instance.StartAsync(store, state, instanceOptions, ct).ConfigureAwait(false);
            }
            catch (InstanceException e)
            {
                Finished(Fail("cloud-init", "status", clock.Elapsed, "status", "done", $"the instance did not start: {e.Message}"));
                foreach (var c in checks)
                {
                    Finished(new CheckReport { Section = c.Section, Subject = c.Subject, Duration = TimeSpan.Zero, Skipped = true });
                }
                return await RecordAsync(store, pair, imageSpec, serviceSpec, reports, clock.Elapsed, options, progress, ct).ConfigureAwait(false);
            }
            await using var server = PackageServer.StartInNamespace(instance.Pid, options.ServePort, url.AbsolutePath, package);
            bool installed = await CloudInitAsync(instance, options, Finished, ct).ConfigureAwait(false);
            Finished(await SchemaAsync(instance, ct).ConfigureAwait(false));
            foreach (var check in checks)
            {
                Finished(installed
                    ? await BootPhase.RunAsync(instance, check, ct).ConfigureAwait(false)
                    : new CheckReport { Section = check.Section, Subject = check.Subject, Duration = TimeSpan.Zero, Skipped = true });
            }
        }
        finally
        {
            if (instance is not null)
            {
                await instance.DisposeAsync().ConfigureAwait(false);
            }
        }
        return await RecordAsync(store, pair, imageSpec, serviceSpec, reports, clock.Elapsed, options, progress, ct).ConfigureAwait(false);
    }

    /// <summary><c>kiln test SERVICE --phase vm</c>: the service's image as a raw disk booted under qemu with the pair's
    /// seed as a second drive (an ISO labelled cidata, as NoCloud reads it), the package served by Kiln on the host's
    /// loopback (which qemu's user network shows the guest as 10.0.2.2). The guest waits for cloud-init (its status,
    /// with the end of its output log when it failed), validates the user-data with <c>cloud-init schema</c>, then runs
    /// the image's and the service's checks; the pair is recorded with its results in phase vm.</summary>
    public static async Task<PairTestResult> TestVmAsync(string definitionPath, string storeRoot, string serviceName, PairTestOptions options,
        VmOptions vm, RawDiskExport exportRawDisk, IProgress<BuildEvent>? progress = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(vm);
        ArgumentNullException.ThrowIfNull(exportRawDisk);
        var (service, image, imageSpec, serviceSpec, checks) = Load(definitionPath, serviceName,
            "kiln test --phase vm writes into a copy of the disk's filesystem: run it as root");
        using var store = KilnStore.Open(storeRoot);
        using var storeLock = store.AcquireLock(exclusive: false, ct);
        var pair = PairGate.Current(store, service);
        var manifest = store.Names.TryGetTag(service.Image)!;
        var package = await store.Content.ReadBlobAsync(pair.Package, ct).ConfigureAwait(false);
        var path = $"/{service.Name}.deb";
        await using var server = PackageServer.StartOnLoopback(path, package);
        var seed = CloudInitSeed.For(service, pair, new Uri($"http://10.0.2.2:{server.Port.ToString(CultureInfo.InvariantCulture)}{path}"));
        // The guest's own waits come first: cloud-init's end (its log when it failed), then the schema of the user-data.
        var mark = service.Mark;
        Check[] guestFirst =
        [
            new CommandCheck
            {
                Mark = mark,
                Subject = $"cloud-init status --wait --long || {{ echo; echo '{OutputLog} (last lines):'; tail -n 40 {OutputLog}; exit 1; }}",
                RunPhase = TestPhase.Boot,
                Stdout = ["status: done"],
                Timeout = options.CloudInitTimeout,
            },
            new CommandCheck
            {
                Mark = mark,
                // From a drive, the seed is not in the seed folder: cloud-init keeps the user-data it read here.
                Subject = "cloud-init schema --config-file /var/lib/cloud/instance/user-data.txt",
                RunPhase = TestPhase.Boot,
                Timeout = TimeSpan.FromSeconds(120),
            },
        ];
        string[] names = ["status", "schema user-data"];
        CheckReport Named(CheckReport r, int i) => i < names.Length ? r with { Section = "cloud-init", Subject = names[i] } : r;

        var clock = Stopwatch.StartNew();
        var work = store.CreateTempDir("vm");
        try
        {
            var disk = Path.Combine(work, image.Name + ".raw");
            progress?.Report(new VmProgress(service.Name, new VmEvent(VmStage.Preparing, $"exporting {image.Name} as a raw disk", clock.Elapsed)));
            await exportRawDisk(store, image.Name, manifest, disk, ct).ConfigureAwait(false);
            var iso = Path.Combine(work, "seed.iso");
            await seed.WriteIsoAsync(iso, work, ct).ConfigureAwait(false);
            Check[] all = [.. guestFirst, .. checks];
            progress?.Report(new TestPhaseStarted(service.Name, VmPhaseName, all.Length));
            int finished = 0;
            var forward = new Progress(e => progress?.Report(new VmProgress(service.Name, e)));
            var reports = await VmPhase.RunAsync(disk, all, vm with { ExtraDrives = [.. vm.ExtraDrives, iso], Progress = forward, WorkDirectory = work },
                r => progress?.Report(new CheckFinished(service.Name, VmPhaseName, Named(r, finished++))), ct).ConfigureAwait(false);
            return await RecordAsync(store, pair, imageSpec, serviceSpec, [.. reports.Select(Named)], clock.Elapsed, options, progress, ct, VmPhaseName)
                .ConfigureAwait(false);
        }
        finally
        {
            store.DeleteTempDir(work);
        }
    }

    private sealed class Progress(Action<VmEvent> report) : IProgress<VmEvent>
    {
        public void Report(VmEvent value) => report(value);
    }

    /// <summary>The service, its image (which must boot systemd), both specs and the checks a pair test runs; refuses
    /// a caller that is not root with <paramref name="needsRoot"/>.</summary>
    private static (ServiceDefinition Service, ImageDefinition Image, TestSpec? ImageSpec, TestSpec? ServiceSpec, List<Check> Checks) Load(
        string definitionPath, string serviceName, string needsRoot)
    {
        var file = DefinitionLoader.Load(definitionPath);
        var service = PairGate.Service(file, serviceName);
        var image = file.Images.First(i => i.Name == service.Image);
        if (image.Boot != BootMode.Systemd)
        {
            throw ServiceException.BadInput($"service `{service.Name}` ({service.Mark}): image `{image.Name}` must have `boot: systemd` for cloud-init to run at boot");
        }
        var imageSpec = image.Test is { } it ? TestSpecLoader.Load(it, image.Boot) : null;
        var serviceSpec = service.Test is { } st ? TestSpecLoader.Load(st, BootMode.Systemd) : null;
        var checks = InstanceChecks(imageSpec, serviceSpec);
        if (!Environment.IsPrivilegedProcess)
        {
            throw new Sandbox.SandboxException(needsRoot);
        }
        return (service, image, imageSpec, serviceSpec, checks);
    }

    /// <summary>The checks a pair test runs in the booted instance: the image's command, service, port and http checks
    /// (its file, package, user and group checks passed when it was built), and all of the service's, which must be
    /// of those kinds: its package is not in the image's layers, where the others look.</summary>
    internal static List<Check> InstanceChecks(TestSpec? imageSpec, TestSpec? serviceSpec)
    {
        var problems = (serviceSpec?.Checks ?? []).Where(c => !Supports(c))
            .Select(c => new DefinitionProblem(c.Mark, $"`{c.Section}` checks read an image's layers; a service's spec runs in the booted instance: use command, service, port or http checks"))
            .ToList();
        if (problems.Count > 0)
        {
            throw new DefinitionException(problems);
        }
        return [.. (imageSpec?.Checks ?? []).Where(Supports), .. serviceSpec?.Checks ?? []];
    }

    private static bool Supports(Check c) => c is CommandCheck or ServiceCheck or PortCheck or HttpCheck;

    /// <summary>Waits for cloud-init to finish; its failure (or a cloud-init that never ran) fails with its status and
    /// the end of its own output log.</summary>
    private static async Task<bool> CloudInitAsync(Instance instance, PairTestOptions options, Action<CheckReport> finished, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var status = await instance.ExecAsync("cloud-init status --wait --long", options.CloudInitTimeout, ct).ConfigureAwait(false);
        bool done = !status.TimedOut && status.ExitCode == 0 && status.Stdout.Contains("status: done", StringComparison.Ordinal);
        if (done)
        {
            finished(new CheckReport { Section = "cloud-init", Subject = "status", Duration = clock.Elapsed });
            return true;
        }
        // --wait prints a dot a second while it waits: the status follows them.
        var log = await instance.ExecAsync($"tail -n 40 {OutputLog}", TimeSpan.FromSeconds(10), ct).ConfigureAwait(false);
        var what = status.TimedOut ? $"no end within {options.CloudInitTimeout.TotalSeconds:0} s" : $"exit {status.ExitCode}";
        finished(Fail("cloud-init", "status", clock.Elapsed, "status", "done",
            $"{what}: {(status.Stdout + status.Stderr).TrimStart('.', '\n').Trim()}\n{OutputLog} (last lines):\n{log.Stdout.TrimEnd()}"));
        return false;
    }

    /// <summary><c>cloud-init schema</c> of the image's own cloud-init, on the seed's user-data as the instance read it.</summary>
    private static async Task<CheckReport> SchemaAsync(Instance instance, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var r = await instance.ExecAsync($"cloud-init schema --config-file {CloudInitSeed.SeedDir}/user-data", TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);
        return r.ExitCode == 0 && !r.TimedOut
            ? new CheckReport { Section = "cloud-init", Subject = "schema user-data", Duration = clock.Elapsed }
            : Fail("cloud-init", "schema user-data", clock.Elapsed, "exit-status", "0", $"{r.ExitCode}: {(r.Stdout + r.Stderr).Trim()}");
    }

    private static CheckReport Fail(string section, string subject, TimeSpan duration, string matcher, string expected, string actual) =>
        new() { Section = section, Subject = subject, Duration = duration, Failures = [new CheckFailure(matcher, expected, actual)] };

    private static async Task<PairTestResult> RecordAsync(KilnStore store, ServicePair pair, TestSpec? imageSpec, TestSpec? serviceSpec,
        List<CheckReport> reports, TimeSpan duration, PairTestOptions options, IProgress<BuildEvent>? progress, CancellationToken ct,
        string phase = Phase)
    {
        var report = new TestPhaseReport { Image = pair.Service, Phase = phase, Checks = reports, Duration = duration };
        var record = new PairRecord
        {
            Pair = pair,
            Phase = phase,
            Passed = report.Passed,
            TestedAt = options.Now,
            Duration = duration,
            ServiceSpec = serviceSpec?.Digest,
            ImageSpec = imageSpec?.Digest,
            Checks = reports,
        };
        await new PairStore(store).WriteAsync(record, ct).ConfigureAwait(false);
        progress?.Report(new TestPhaseFinished(pair.Service, report));
        return new PairTestResult(record, report);
    }
}
