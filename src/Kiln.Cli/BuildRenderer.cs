using System.Globalization;
using Kiln.Build.Execution;
using Kiln.Build.Exporters;
using Kiln.Build.Testing.Vm;

namespace Kiln.Cli;

/// <summary>Renders build events: one line per finished step (cache hits marked), step output when asked
/// or when live, and a closing summary per image.</summary>
internal sealed class BuildRenderer : IProgress<BuildEvent>
{
    private readonly TextWriter _out;
    private readonly bool _verbose;
    private readonly object _gate = new();
    private readonly Dictionary<string, int> _stepCounts = new(StringComparer.Ordinal);

    public BuildRenderer(TextWriter output, bool verbose)
    {
        _out = output;
        _verbose = verbose;
    }

    /// <summary>Set when a live status line is shown (on a terminal).</summary>
    public Action<string>? Status { get; set; }

    public void Report(BuildEvent value)
    {
        lock (_gate)
        {
            switch (value)
            {
                case ImageStarted s:
                    _stepCounts[s.Image] = s.StepCount;
                    Status?.Invoke($"{s.Image}: starting");
                    break;
                case StepStarted s:
                    Status?.Invoke($"{s.Image} {Position(s.Image, s.Index)} {s.Description}");
                    if (Status is null)
                    {
                        _out.WriteLine($"{s.Image} {Position(s.Image, s.Index)} {s.Description} ...");
                    }
                    break;
                case StepOutput o:
                    if (_verbose)
                    {
                        _out.WriteLine($"{o.Image} | {o.Line}");
                    }
                    else
                    {
                        Status?.Invoke($"{o.Image} {Position(o.Image, o.Index)} {Truncate(o.Line, 100)}");
                    }
                    break;
                case StepFinished f:
                    var what = f.Cached ? "CACHED" : "done";
                    var layer = f.Layer is { } l ? $"  layer {l.Digest.Short} {Size(l.Size)}" : "";
                    if (Status is not null)
                    {
                        // On a terminal: cache hits in green, steps that ran in yellow.
                        Spectre.Console.AnsiConsole.MarkupLine(
                            $"{Esc(f.Image)} {Esc(Position(f.Image, f.Index))} {Esc(f.Description)}: [{(f.Cached ? "green" : "yellow")}]{what}[/] in {Seconds(f.Duration)}[grey]{Esc(layer)}[/]");
                        break;
                    }
                    _out.WriteLine($"{f.Image} {Position(f.Image, f.Index)} {f.Description}: {what} in {Seconds(f.Duration)}{layer}");
                    break;
                case BuildWarning w:
                    _out.WriteLine("warning: " + w.Message);
                    break;
                case TestPhaseStarted t:
                    Status?.Invoke($"{t.Image} test {t.Phase}: {t.CheckCount} checks");
                    if (Status is null)
                    {
                        _out.WriteLine($"{t.Image} test {t.Phase}: {t.CheckCount} checks ...");
                    }
                    break;
                case CheckFinished c:
                    if (_verbose || !c.Check.Passed)
                    {
                        _out.WriteLine($"{c.Image} test {c.Phase}: {c.Check.Name}: {(c.Check.Passed ? "ok" : "FAILED")} in {Seconds(c.Check.Duration)}");
                    }
                    else
                    {
                        Status?.Invoke($"{c.Image} test {c.Phase}: {c.Check.Name}");
                    }
                    break;
                case TestPhaseFinished t:
                    _out.WriteLine($"{t.Image} test {t.Report.Phase}: {PhaseLine(t.Report)}");
                    break;
                case ImageRejected r:
                    _out.WriteLine(r.NameRemoved
                        ? $"{r.Image}: REJECTED, kept as {r.Tag} ({r.Manifest.Digest.Short}); {r.Image} named this very image, which fails the current spec, so the name was removed"
                        : $"{r.Image}: REJECTED, kept as {r.Tag} ({r.Manifest.Digest.Short}); {r.Image} keeps its previous image");
                    break;
                case ImageMinimized m:
                    _out.WriteLine($"{m.Image} minimize: {m.Outcome.FilesBefore} -> {m.Outcome.FilesAfter} files, "
                        + $"{Size(m.Outcome.BytesBefore)} -> {Size(m.Outcome.BytesAfter)} ({m.Manifest.Digest.Short}{(m.Outcome.Cached ? ", cached" : "")}); "
                        + $"full image kept as {m.Image}.full; testing the minimized image");
                    break;
                case ImageSkipped s:
                    _out.WriteLine($"{s.Image}: not built: {s.Because}");
                    break;
                case VmProgress v:
                    Status?.Invoke($"{v.Image} test vm: {v.Event.Message}");
                    if (Status is null)
                    {
                        _out.WriteLine($"{v.Image} test vm: {v.Event.Message} ({Seconds(v.Event.Elapsed)})");
                    }
                    break;
                case ExportStarted e:
                    Status?.Invoke($"{e.Image} output {e.Format}: writing {e.Path}");
                    if (Status is null)
                    {
                        _out.WriteLine($"{e.Image} output {e.Format}: writing {e.Path} ...");
                    }
                    break;
                case ExportProgressed e:
                    Status?.Invoke($"{e.Image} output {e.Format}: {e.Message}");
                    if (_verbose)
                    {
                        _out.WriteLine($"{e.Image} output {e.Format}: {e.Message}");
                    }
                    break;
                case ExportFinished e:
                    _out.WriteLine($"{e.Image} output {e.Result.Format}: {OutputLine(e.Result)}");
                    break;
                case ImageFinished:
                    break;
            }
        }
    }

    /// <summary>One line on what the remote cache did: steps and test results found and bytes fetched; entries and
    /// blobs sent, and blobs the target had already (or mounted).</summary>
    public static string RemoteCacheLine(RemoteCacheSummary c)
    {
        var line = $"remote cache: {c.StepsFound} steps and {c.TestResultsFound} test results found, {c.BlobsFetched} blobs fetched ({Size(c.BytesFetched)})";
        if (c.To is not null)
        {
            line += $"; to {c.To}: {c.EntriesPushed} entries pushed ({c.EntriesPresent} there already), "
                + $"{c.BlobsPushed} blobs pushed ({Size(c.BytesPushed)}), {c.BlobsSkipped - c.BlobsMounted} skipped as present, {c.BlobsMounted} mounted"
                + (c.ExportError is null ? "" : " (export FAILED)");
        }
        if (c.Unavailable.Count > 0)
        {
            line += $"; {c.Unavailable.Count} source{(c.Unavailable.Count == 1 ? "" : "s")} unavailable";
        }
        return line;
    }

    public void Summary(BuildResult result)
    {
        _out.WriteLine();
        foreach (var image in result.Images)
        {
            int remote = image.Steps.Count(s => s.Remote);
            _out.WriteLine($"{image.Name}  {image.Manifest.Digest}  {image.StepsRun} run, {image.StepsCached} cached"
                + (remote > 0 ? $" ({remote} remote)" : "") + $", {Seconds(image.Duration)}");
            foreach (var s in image.Steps)
            {
                _out.WriteLine($"    {(s.Remote ? "remote" : s.Cached ? "cached" : Seconds(s.Duration)),8}  {s.Description}");
            }
            foreach (var p in image.Tests.Phases)
            {
                _out.WriteLine($"    {(p.Remote ? "remote" : p.Cached ? "cached" : p.SkippedBecause is null ? Seconds(p.Duration) : "skipped"),8}  test {p.Phase}: {PhaseLine(p)}");
            }
        }
        foreach (var s in result.Skipped)
        {
            _out.WriteLine($"{s.Name}  not built: {s.Because}");
        }
        if (result.RemoteCache is { } c)
        {
            _out.WriteLine(RemoteCacheLine(c));
        }
    }

    public void Outputs(IReadOnlyList<OutputResult> outputs)
    {
        foreach (var o in outputs)
        {
            _out.WriteLine($"{o.Image} {o.Format}: {OutputLine(o)}");
        }
    }

    internal static string OutputLine(OutputResult o) =>
        o.UpToDate ? $"{o.Path} is up to date ({Size(o.Bytes)})"
        : $"wrote {o.Path} ({Size(o.Bytes)}) in {Seconds(o.Duration)}{(o.Detail is { } d ? "; " + d : "")}";

    internal static string PhaseLine(TestPhaseReport p)
    {
        if (p.SkippedBecause is { } why)
        {
            return $"{p.Checks.Count} checks skipped: {why}";
        }
        var outcome = p.Passed ? $"{p.Checks.Count} passed" : $"{p.Failed} of {p.Checks.Count} FAILED";
        return $"{outcome} {(p.Cached ? "(cached)" : "in " + Seconds(p.Duration))}";
    }

    /// <summary>Every failed check with each matcher's expected and actual value.</summary>
    public static void Failures(TextWriter output, IEnumerable<TestPhaseReport> phases)
    {
        foreach (var p in phases)
        {
            foreach (var c in p.Checks.Where(c => !c.Passed))
            {
                output.WriteLine($"FAILED {p.Image} ({p.Phase}) {c.Name}");
                foreach (var f in c.Failures)
                {
                    output.WriteLine($"    {f.Matcher}: expected {f.Expected}");
                    output.WriteLine($"    {new string(' ', f.Matcher.Length)}  actual   {f.Actual}");
                }
            }
        }
    }

    public static void Failures(TextWriter output, BuildResult result)
    {
        Failures(output, result.Images.SelectMany(i => i.Tests.Phases));
        foreach (var i in result.Images.Where(i => i.Rejected))
        {
            output.WriteLine($"error: {i.Name} failed its tests: kept as {Executor.RejectedTag(i.Name)}, not named {i.Name}");
        }
        foreach (var s in result.Skipped)
        {
            output.WriteLine($"error: {s.Name} was not built: {s.Because}");
        }
    }

    private string Position(string image, int index) =>
        index < 0 ? "[base]" : $"[{index + 1}/{_stepCounts.GetValueOrDefault(image)}]";

    private static string Esc(string s) => Spectre.Console.Markup.Escape(s);

    private static string Truncate(string s, int n) => s.Length <= n ? s : s[..n] + "…";

    internal static string Seconds(TimeSpan t) => t.TotalSeconds.ToString("0.00", CultureInfo.InvariantCulture) + "s";

    internal static string Size(long bytes) => bytes switch
    {
        < 1024 => $"{bytes} B",
        < 1024 * 1024 => (bytes / 1024.0).ToString("0.0", CultureInfo.InvariantCulture) + " KiB",
        < 1024L * 1024 * 1024 => (bytes / 1024.0 / 1024.0).ToString("0.0", CultureInfo.InvariantCulture) + " MiB",
        _ => (bytes / 1024.0 / 1024.0 / 1024.0).ToString("0.00", CultureInfo.InvariantCulture) + " GiB",
    };
}
