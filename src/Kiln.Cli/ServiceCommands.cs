using System.Globalization;
using Kiln.Build.Definition;
using Kiln.Build.Execution;
using Kiln.Build.Services;
using Kiln.Build.Store;

namespace Kiln.Cli;

/// <summary>The commands of services installed at boot: the packages <c>kiln build</c> stores, <c>kiln seed</c>,
/// <c>kiln test SERVICE</c> and <c>kiln pairs</c>.</summary>
internal static class ServiceCommands
{
    /// <summary>After a build: each service's package built (or read) and kept in the store. Null without services.</summary>
    public static async Task<IReadOnlyList<PackageResult>?> BuildPackagesAsync(BuildResult result, DateTimeOffset epoch, TextWriter? lines, CancellationToken ct)
    {
        if (result.File is not { Services.Count: > 0 } file)
        {
            return null;
        }
        using var store = KilnStore.Open(Cli.StoreRoot());
        using var storeLock = store.AcquireLock(exclusive: false, ct);
        var packages = await Guard(() => ServicePackages.BuildAllAsync(store, file, epoch, ct)).ConfigureAwait(false);
        foreach (var p in packages)
        {
            lines?.WriteLine($"service {p.Service}: package {p.Digest.Value} ({BuildRenderer.Size(p.Size)}{(p.Changed ? ", new" : "")})");
        }
        return packages;
    }

    /// <summary>Whether the definition at <paramref name="path"/> names <paramref name="name"/> as a service and not as
    /// an image (an image of that name is tested as an image).</summary>
    public static bool IsService(string path, string name)
    {
        if (!File.Exists(path) && !Directory.Exists(path))
        {
            return false; // the image test reports the missing definition
        }
        var file = DefinitionLoader.Load(path);
        return file.Services.Any(s => s.Name == name) && file.Images.All(i => i.Name != name);
    }

    /// <summary><c>kiln test SERVICE</c>: the pair test under systemd-nspawn, or under qemu with <c>--phase vm</c>.</summary>
    public static async Task<int> TestAsync(Arguments a, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        var service = a.Positionals[0];
        bool vm = a.Last("--phase") switch
        {
            null or "boot" => false,
            "vm" => true,
            var other => throw new UsageException($"kiln test: a service's pair test runs in phase boot (systemd-nspawn) or vm (qemu), not '{other}'"),
        };
        if (!vm && (a.Last("--disk") ?? a.Last("--accel") ?? a.Last("--vm-timeout")) is not null)
        {
            throw new UsageException("kiln test: --disk, --accel and --vm-timeout go with --phase vm");
        }
        PathArguments.Output("test", "--junit", a.Last("--junit"));
        bool json = a.Has("--json");
        var renderer = new BuildRenderer(json ? stderr : stdout, a.Has("--verbose"));
        var options = new PairTestOptions { MemoryScratchSize = a.Has("--scratch-on-disk") ? null : Cli.ScratchSize() };
        var result = vm
            ? await Guard(() =>
            {
                var (vmOptions, export) = TestCommand.VmSetup(a);
                return PairTester.TestVmAsync(a.Last("--file") ?? ".", Cli.StoreRoot(), service, options, vmOptions, export, renderer, ct);
            }).ConfigureAwait(false)
            : await Guard(() => PairTester.TestAsync(a.Last("--file") ?? ".", Cli.StoreRoot(), service, options, renderer, ct)).ConfigureAwait(false);
        if (a.Last("--junit") is { } junit)
        {
            Kiln.Build.Testing.JUnitReport.WriteFile(junit, [result.Report]);
        }
        if (json)
        {
            stdout.WriteLine(JsonOutput.Write(w =>
            {
                w.WriteStartObject();
                PairStore.Write(w, result.Record);
                w.WriteEndObject();
            }));
        }
        if (!result.Record.Passed)
        {
            BuildRenderer.Failures(stderr, [result.Report]);
            stderr.WriteLine($"error: pair {result.Record.Pair} failed its test (recorded as failed)");
            return ExitCodes.Failed;
        }
        if (!json)
        {
            stdout.WriteLine($"pair {result.Record.Pair} passed ({BuildRenderer.Seconds(result.Record.Duration)}); recorded");
        }
        return ExitCodes.Ok;
    }

    /// <summary><c>kiln seed SERVICE</c>: the pair's NoCloud seed as an ISO labelled cidata and/or a folder.</summary>
    public static async Task<int> SeedAsync(string[] args, TextWriter stdout, CancellationToken ct)
    {
        var a = Arguments.Parse(args, "seed", ["--json", "--help"], ["--output", "--dir", "--url", "--file"],
            new Dictionary<string, string> { ["-o"] = "--output", ["-f"] = "--file", ["-h"] = "--help" });
        if (a.Has("--help"))
        {
            stdout.WriteLine(Help.Seed);
            return ExitCodes.Ok;
        }
        if (a.Positionals.Count != 1)
        {
            throw new UsageException("kiln seed: takes one SERVICE (see 'kiln seed --help')");
        }
        var definitionPath = a.Last("--file") ?? ".";
        PathArguments.Definition("seed", definitionPath);
        var iso = a.Last("--output") ?? (a.Last("--dir") is null ? "seed.iso" : null);
        PathArguments.Output("seed", "--output", iso);
        var dir = a.Last("--dir");
        var serviceName = a.Positionals[0];
        Uri? url = null;
        if (a.Last("--url") is { } u && (!Uri.TryCreate(u, UriKind.Absolute, out url) || url.Scheme is not ("http" or "https")))
        {
            throw new UsageException($"kiln seed: --url takes an http or https URL, not '{u}'");
        }
        var file = DefinitionLoader.Load(definitionPath);
        var service = await Guard(() => Task.FromResult(PairGate.Service(file, serviceName))).ConfigureAwait(false);
        url ??= new Uri($"http://127.0.0.1:{new PairTestOptions().ServePort.ToString(CultureInfo.InvariantCulture)}/{service.Name}.deb");
        using var store = KilnStore.Open(Cli.StoreRoot());
        using var storeLock = store.AcquireLock(exclusive: false, ct);
        var pair = await Guard(() => Task.FromResult(PairGate.Current(store, service))).ConfigureAwait(false);
        var seed = CloudInitSeed.For(service, pair, url);
        if (dir is not null)
        {
            await seed.WriteFolderAsync(dir, ct).ConfigureAwait(false);
            // The package beside the seed: serving the folder serves what the seed fetches.
            await File.WriteAllBytesAsync(Path.Combine(dir, service.Name + ".deb"), await store.Content.ReadBlobAsync(pair.Package, ct).ConfigureAwait(false), ct)
                .ConfigureAwait(false);
        }
        if (iso is not null)
        {
            var work = store.CreateTempDir("seed");
            try
            {
                await Guard(async () =>
                {
                    await seed.WriteIsoAsync(Path.GetFullPath(iso), work, ct).ConfigureAwait(false);
                    return 0;
                }).ConfigureAwait(false);
            }
            finally
            {
                store.DeleteTempDir(work);
            }
        }
        if (a.Has("--json"))
        {
            stdout.WriteLine(JsonOutput.Write(w =>
            {
                w.WriteStartObject();
                w.WriteString("service", service.Name);
                w.WriteString("pair", pair.Digest.Value);
                w.WriteString("image", pair.Image.Value);
                w.WriteString("package", pair.Package.Value);
                w.WriteString("config", pair.Config.Value);
                w.WriteString("instanceId", CloudInitSeed.InstanceId(pair));
                w.WriteString("url", url.AbsoluteUri);
                if (iso is not null)
                {
                    w.WriteString("iso", Path.GetFullPath(iso));
                }
                if (dir is not null)
                {
                    w.WriteString("dir", Path.GetFullPath(dir));
                }
                w.WriteEndObject();
            }));
        }
        else
        {
            stdout.WriteLine($"seed of pair {pair} (instance-id {CloudInitSeed.InstanceId(pair)}), package from {url.AbsoluteUri}");
            if (iso is not null)
            {
                stdout.WriteLine($"  {iso} (ISO 9660, label cidata)");
            }
            if (dir is not null)
            {
                stdout.WriteLine($"  {dir}/ (user-data, meta-data, {service.Name}.deb)");
            }
        }
        return ExitCodes.Ok;
    }

    /// <summary><c>kiln pairs</c>: the tested pairs; with --check SERVICE, the gate for the service's current pair.</summary>
    public static async Task<int> PairsAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        var a = Arguments.Parse(args, "pairs", ["--json", "--help"], ["--check", "--file", "--phase"],
            new Dictionary<string, string> { ["-f"] = "--file", ["-h"] = "--help" });
        if (a.Has("--help"))
        {
            stdout.WriteLine(Help.Pairs);
            return ExitCodes.Ok;
        }
        if (a.Positionals.Count != 0)
        {
            throw new UsageException("kiln pairs: takes no arguments (see 'kiln pairs --help')");
        }
        using var store = KilnStore.Open(Cli.StoreRoot());
        using var storeLock = store.AcquireLock(exclusive: false, ct);
        if (a.Last("--check") is { } name)
        {
            var definitionPath = a.Last("--file") ?? ".";
            PathArguments.Definition("pairs", definitionPath);
            var file = DefinitionLoader.Load(definitionPath);
            var phases = a.All("--phase").Count > 0 ? a.All("--phase") : PairGate.DefaultPhases;
            var gate = await Guard(() => Task.FromResult(PairGate.Check(store, PairGate.Service(file, name), phases))).ConfigureAwait(false);
            if (a.Has("--json"))
            {
                stdout.WriteLine(JsonOutput.Write(w =>
                {
                    w.WriteStartObject();
                    w.WriteString("service", gate.Pair.Service);
                    w.WriteString("pair", gate.Pair.Digest.Value);
                    w.WriteString("image", gate.Pair.Image.Value);
                    w.WriteString("package", gate.Pair.Package.Value);
                    w.WriteString("config", gate.Pair.Config.Value);
                    w.WriteBoolean("allowed", gate.Allowed);
                    w.WriteEndObject();
                }));
            }
            if (gate.Refusal is { } refusal)
            {
                stderr.WriteLine("error: " + refusal);
                return ExitCodes.Failed;
            }
            if (!a.Has("--json"))
            {
                stdout.WriteLine($"pair {gate.Pair} tested in {string.Join(", ", gate.Phases.Keys)}: allowed");
            }
            return ExitCodes.Ok;
        }
        var records = new PairStore(store).All();
        if (a.Has("--json"))
        {
            stdout.WriteLine(JsonOutput.Write(w =>
            {
                w.WriteStartArray();
                foreach (var r in records)
                {
                    w.WriteStartObject();
                    PairStore.Write(w, r);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }));
            return ExitCodes.Ok;
        }
        if (records.Count == 0)
        {
            stdout.WriteLine("no tested pairs (kiln test SERVICE tests one)");
        }
        foreach (var r in records)
        {
            stdout.WriteLine($"{(r.Passed ? "passed" : "FAILED")}  {r.Phase,-4}  {r.TestedAt:yyyy-MM-dd HH:mm}  {r.Pair}");
        }
        return ExitCodes.Ok;
    }

    /// <summary>Maps a <see cref="ServiceException"/> to the CLI's exceptions: bad input exits 2, a failure 1.</summary>
    private static async Task<T> Guard<T>(Func<Task<T>> run)
    {
        try
        {
            return await run().ConfigureAwait(false);
        }
        catch (ServiceException e) when (e.IsBadInput)
        {
            throw new UsageException("error: " + e.Message);
        }
        catch (ServiceException e)
        {
            throw new InvalidOperationException(e.Message, e);
        }
    }
}
