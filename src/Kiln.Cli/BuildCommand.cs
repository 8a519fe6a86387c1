using Kiln.Build.Execution;
using Kiln.Build.Exporters;
using Kiln.Build.Layers;
using Kiln.Build.Testing;
using Spectre.Console;

namespace Kiln.Cli;

internal static class BuildCommand
{
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        var a = Arguments.Parse(args, "build", ["--no-cache", "--refresh", "--insecure", "--json", "--verbose", "--help", "--zstd", "--no-outputs", "--scratch-on-disk", "--full-package-lists", "--debug", "--watch"], ["--target", "--trace", "--junit", "--cache-from", "--cache-to"],
            new Dictionary<string, string> { ["-t"] = "--target", ["-v"] = "--verbose", ["-h"] = "--help" });
        if (a.Has("--help"))
        {
            stdout.WriteLine(Help.Build);
            return ExitCodes.Ok;
        }
        if (a.Positionals.Count > 1)
        {
            throw new UsageException("kiln build: takes one PATH (a kiln.yaml or its folder)");
        }
        var path = a.Positionals.Count == 1 ? a.Positionals[0] : ".";
        PathArguments.Definition("build", path);
        PathArguments.Output("build", "--trace", a.Last("--trace"));
        PathArguments.Output("build", "--junit", a.Last("--junit"));
        if (a.Has("--watch") && (a.Has("--json") || a.Has("--debug") || a.Last("--trace") is not null || a.Last("--junit") is not null))
        {
            throw new UsageException("kiln build: --watch prints a line per build; it does not go with --json, --junit, --trace or --debug");
        }
        using var remoteCache = new CacheArguments(a.All("--cache-from"), a.Last("--cache-to"), a.Has("--insecure"));
        var options = Options(a, remoteCache);
        if (a.Has("--watch"))
        {
            return await WatchLoop.RunAsync(path, options, !a.Has("--no-outputs"), null, stdout, stderr, ct).ConfigureAwait(false);
        }
        bool debug = a.Has("--debug");
        if (debug && (Console.IsInputRedirected || Console.IsOutputRedirected))
        {
            stderr.WriteLine("kiln build --debug: no terminal, so a failing step opens no shell");
            debug = false;
        }
        using var oneShell = new SemaphoreSlim(1);
        if (debug)
        {
            options = options with { OnStepFailed = (step, token) => ShellCommand.DebugAsync(step, stderr, oneShell, token) };
        }
        bool json = a.Has("--json");
        // Under --debug the terminal is the shell's when a step fails: plain lines, no status line drawn over it.
        bool live = !json && !debug && !Console.IsOutputRedirected && CliEnvironment.Get("TERM") is { } term && term != "dumb";
        var renderer = new BuildRenderer(json ? stderr : stdout, a.Has("--verbose"));
        var tracePath = a.Last("--trace");
        var trace = tracePath is null ? null : new TraceRecorder(renderer);
        IProgress<BuildEvent> progress = new Unexpected.Tracker(trace is null ? renderer : trace);
        remoteCache.Warn = message => progress.Report(new BuildWarning("", message));
        remoteCache.Fetches = new CacheTransferDisplay(renderer, json ? stderr : stdout, "fetched", live);
        remoteCache.Pushes = new CacheTransferDisplay(renderer, json ? stderr : stdout, "pushed", live);
        if (trace is not null)
        {
            Unexpected.OnLastResort = ex =>
            {
                trace.Failed(ex);
                trace.Write(tracePath!);
            };
        }
        BuildResult result;
        IReadOnlyList<OutputResult> outputs;
        bool writeOutputs = !a.Has("--no-outputs");
        try
        {
            if (live)
            {
                (result, outputs) = await AnsiConsole.Status().Spinner(Spinner.Known.Dots).StartAsync("planning", async ctx =>
                {
                    renderer.Status = text => ctx.Status(Markup.Escape(text));
                    return await ExportingBuilder.BuildAsync(path, Cli.StoreRoot(), options, writeOutputs, progress, ct).ConfigureAwait(false);
                }).ConfigureAwait(false);
            }
            else
            {
                (result, outputs) = await ExportingBuilder.BuildAsync(path, Cli.StoreRoot(), options, writeOutputs, progress, ct).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (trace is not null)
        {
            trace.Failed(ex); // the stack goes to the trace, not the terminal
            throw;
        }
        finally
        {
            // Also for a failed build: the trace shows how far it got.
            trace?.Write(tracePath!);
        }
        if (a.Last("--junit") is { } junit)
        {
            JUnitReport.WriteFile(junit, result.Images.SelectMany(i => i.Tests.Phases));
        }
        var packages = await ServiceCommands.BuildPackagesAsync(result, options.Epoch, json ? null : stdout, ct).ConfigureAwait(false);
        if (json)
        {
            stdout.WriteLine(JsonOutput.Build(result, outputs, packages));
        }
        else
        {
            renderer.Summary(result);
            renderer.Outputs(outputs);
        }
        if (!result.Passed)
        {
            BuildRenderer.Failures(stderr, result);
            return ExitCodes.Failed;
        }
        if (result.RemoteCache?.ExportError is { } exportError)
        {
            // The images are named and tested; a CI that asked for --cache-to still has to hear that the cache is not there.
            stderr.WriteLine($"kiln build: the images are built, but the remote cache export to {result.RemoteCache.To} failed: {exportError}");
            return ExitCodes.Failed;
        }
        return ExitCodes.Ok;
    }

    /// <summary>The build options the command line gives (for one build, or each build of a watch loop).</summary>
    internal static BuildOptions Options(Arguments a, CacheArguments remoteCache) => new()
    {
        Targets = a.All("--target"),
        NoCache = a.Has("--no-cache"),
        Refresh = a.Has("--refresh"),
        Compression = a.Has("--zstd") ? Compression.Zstd : Compression.Gzip,
        ScratchOnDisk = a.Has("--scratch-on-disk"),
        FullPackageLists = a.Has("--full-package-lists"),
        MemoryScratchSize = Cli.ScratchSize(),
        Epoch = Cli.Epoch(),
        SecretEnvironment = CliEnvironment.Get,
        RemoteCache = remoteCache.For,
        OpenRegistry = registry => RegistryAccess.Open(registry, a.Has("--insecure")),
        LocateRegistry = reference => RegistryAccess.Locate("build", reference),
        TestFault = Unexpected.TestFault(CliEnvironment.Get("KILN_TEST_FAULT")),
    };
}
