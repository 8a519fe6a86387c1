using System.Diagnostics;
using System.Globalization;
using Kiln.Build.Definition;
using Kiln.Build.Execution;
using Kiln.Build.Exporters;
using Kiln.Build.Local;
using Kiln.Build.Sandbox;
using Kiln.Build.Store;
using Kiln.Build.Testing.Boot;

namespace Kiln.Cli;

/// <summary>What <c>kiln run --watch</c> adds to the watch loop: the instance to start, and restart whenever a build
/// gives its image a new digest.</summary>
internal sealed record WatchedRun(string Image, RunOptions Options);

/// <summary><c>kiln build --watch</c> and <c>kiln run --watch</c>: build (and test) once, then again after each burst of
/// changes to the build context, one build at a time, printing one line per build.</summary>
internal static class WatchLoop
{
    public static async Task<int> RunAsync(string path, BuildOptions options, bool writeOutputs, WatchedRun? watched,
        TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        var definition = Path.GetFullPath(Directory.Exists(path) ? Path.Combine(path, "kiln.yaml") : path);
        var context = Path.GetDirectoryName(definition)!;
        // The build's own outputs (out/ beside kiln.yaml by default) must not start the next build.
        using var watcher = new ContextWatcher(context, relative => relative == "out" || relative.StartsWith("out/", StringComparison.Ordinal));
        LocalRun? run = null;
        try
        {
            stdout.WriteLine($"watching {context} (Ctrl-C to stop)");
            IReadOnlyList<string> changed = [];
            while (true)
            {
                var line = await CycleAsync(path, options, writeOutputs, changed, stderr, ct).ConfigureAwait(false);
                if (watched is not null)
                {
                    (run, var what) = await RunAfterAsync(run, watched, line.Passed, stderr, ct).ConfigureAwait(false);
                    line = line with { Text = line.Text + what };
                }
                stdout.WriteLine(line.Text);
                changed = await NextChangesAsync(watcher, run, watched, stdout, ct).ConfigureAwait(false);
            }
        }
        finally
        {
            if (run is not null)
            {
                await run.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private sealed record CycleLine(string Text, bool Passed);

    private static async Task<CycleLine> CycleAsync(string path, BuildOptions options, bool writeOutputs, IReadOnlyList<string> changed,
        TextWriter stderr, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var what = changed.Count == 0 ? "start" : changed.Count <= 3 ? string.Join(", ", changed) : $"{string.Join(", ", changed.Take(3))} and {changed.Count - 3} more";
        var stamp = DateTime.Now.ToString("HH:mm:ss", CultureInfo.InvariantCulture);
        try
        {
            var (result, _) = await ExportingBuilder.BuildAsync(path, Cli.StoreRoot(), options, writeOutputs, null, ct).ConfigureAwait(false);
            var checks = result.Images.SelectMany(i => i.Tests.Phases).SelectMany(p => p.Checks).Where(c => !c.Skipped).ToList();
            int failed = checks.Count(c => !c.Passed);
            var text = $"{stamp} {what}: {Plural(result.Images.Sum(i => i.StepsRun), "step")} run, {checks.Count - failed} checks passed, {failed} failed, " +
                $"{clock.Elapsed.TotalSeconds:0.00} s: {(result.Passed ? "ok" : "FAILED")}";
            if (!result.Passed)
            {
                BuildRenderer.Failures(stderr, result);
            }
            return new CycleLine(text, result.Passed);
        }
        catch (Exception e) when (e is DefinitionException or BuildException or SandboxException or StoreException or ExportException or IOException
            or InvalidDataException or InstanceException or ArgumentException)
        {
            // A bad edit or a failing step: say so, and wait for the next change.
            stderr.WriteLine("error: " + (e is DefinitionException d ? string.Join(Environment.NewLine + "  ", ["the definition has problems:", .. d.Problems.Select(p => p.ToString())]) : e.Message));
            if (e is BuildException { OutputTail.Count: > 0 } b)
            {
                stderr.WriteLine("last output:");
                foreach (var l in b.OutputTail)
                {
                    stderr.WriteLine("  | " + l);
                }
            }
            return new CycleLine($"{stamp} {what}: build failed, {clock.Elapsed.TotalSeconds:0.00} s: FAILED", false);
        }
    }

    /// <summary>After a build: starts the instance (first time), or replaces it when its image has a new digest; after
    /// a failed build the instance keeps serving what it served. Returns what to add to the cycle's line.</summary>
    private static async Task<(LocalRun? Run, string What)> RunAfterAsync(LocalRun? run, WatchedRun watched, bool passed, TextWriter stderr, CancellationToken ct)
    {
        if (!passed)
        {
            return (run, run is null ? "" : $"; {watched.Image} keeps serving {Short(run.Digest)}");
        }
        try
        {
            if (run is null)
            {
                run = await LocalRun.StartAsync(Cli.StoreRoot(), watched.Image, watched.Options, ct).ConfigureAwait(false);
                return (run, $"; started {watched.Image} {Short(run.Digest)}{RunCommand.Published(run)}");
            }
            return await run.RestartAsync(ct).ConfigureAwait(false)
                ? (run, $"; restarted {watched.Image} on {Short(run.Digest)}")
                : (run, $"; {watched.Image} unchanged");
        }
        catch (Exception e) when (e is InstanceException or LocalException or SandboxException)
        {
            stderr.WriteLine("error: " + e.Message);
            return (run, run is null ? $"; {watched.Image} did not start" : $"; {watched.Image} did not restart, keeps serving {Short(run.Digest)}");
        }
    }

    /// <summary>The next burst of changes; meanwhile, an instance that exits is reported (the next build starts it
    /// again).</summary>
    private static async Task<IReadOnlyList<string>> NextChangesAsync(ContextWatcher watcher, LocalRun? run, WatchedRun? watched, TextWriter stdout, CancellationToken ct)
    {
        var next = watcher.NextAsync(ct);
        if (run is not null && watched is not null && !run.Exited.IsCompleted)
        {
            if (await Task.WhenAny(next, run.Exited).ConfigureAwait(false) != next && run.Exited.IsCompletedSuccessfully)
            {
                stdout.WriteLine($"{watched.Image} exited with status {run.Exited.Result}; it starts again after the next change");
            }
        }
        return await next.ConfigureAwait(false);
    }

    internal static string Short(Kiln.Oci.Digest digest) => digest.ToString()[..19];

    private static string Plural(int n, string what) => n == 1 ? $"1 {what}" : $"{n} {what}s";
}
