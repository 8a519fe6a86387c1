using System.Globalization;
using Kiln.Build.Execution;

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
                case ImageFinished:
                    break;
            }
        }
    }

    public void Summary(BuildResult result)
    {
        _out.WriteLine();
        foreach (var image in result.Images)
        {
            _out.WriteLine($"{image.Name}  {image.Manifest.Digest}  {image.StepsRun} run, {image.StepsCached} cached, {Seconds(image.Duration)}");
            foreach (var s in image.Steps)
            {
                _out.WriteLine($"    {(s.Cached ? "cached" : Seconds(s.Duration)),8}  {s.Description}");
            }
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
        _ => (bytes / 1024.0 / 1024.0).ToString("0.0", CultureInfo.InvariantCulture) + " MiB",
    };
}
