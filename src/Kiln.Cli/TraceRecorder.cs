using System.Text.Json;
using Kiln.Build.Execution;
using Kiln.Build.Exporters;

namespace Kiln.Cli;

/// <summary>Records a build's events as Chrome trace-event JSON ("X" complete events, microseconds), readable in
/// Perfetto or chrome://tracing: one lane (tid) per image holding the image, its steps and their phases;
/// lane 0 holds build-wide phases such as planning. Passes every event on to <see cref="Inner"/>.</summary>
internal sealed class TraceRecorder : IProgress<BuildEvent>
{
    private readonly object _gate = new();
    private readonly DateTimeOffset _origin = DateTimeOffset.UtcNow;
    private readonly List<(string Name, string Category, int Tid, double Ts, double Dur, Dictionary<string, string> Args)> _events = [];
    private readonly Dictionary<string, int> _lanes = new(StringComparer.Ordinal);
    private readonly Dictionary<(string, int), DateTimeOffset> _stepStarts = [];
    private readonly Dictionary<string, DateTimeOffset> _imageStarts = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Image, string Format), (string Phase, DateTimeOffset Start)> _exportPhases = [];

    private readonly object _writeGate = new();
    private (double Ts, string Message, string Stack)? _failure;

    public TraceRecorder(IProgress<BuildEvent> inner) => Inner = inner;

    /// <summary>Records the error the build ended with, and its stack, as an instant event ("i") on the build's lane.</summary>
    public void Failed(Exception ex)
    {
        lock (_gate)
        {
            _failure ??= ((DateTimeOffset.UtcNow - _origin).Ticks / 10.0, $"{ex.GetType().Name}: {ex.Message}", ex.ToString());
        }
    }

    public IProgress<BuildEvent> Inner { get; }

    public void Report(BuildEvent value)
    {
        var now = DateTimeOffset.UtcNow;
        lock (_gate)
        {
            switch (value)
            {
                case ImageStarted s:
                    _imageStarts[s.Image] = now;
                    break;
                case ImageFinished f when _imageStarts.TryGetValue(f.Image, out var start):
                    Add(f.Image, "image", f.Image, start, f.Result.Duration, new()
                    {
                        ["manifest"] = f.Result.Manifest.Digest.ToString(),
                        ["steps run"] = f.Result.StepsRun.ToString(System.Globalization.CultureInfo.InvariantCulture),
                        ["steps cached"] = f.Result.StepsCached.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    });
                    break;
                case StepStarted s:
                    _stepStarts[(s.Image, s.Index)] = now;
                    break;
                case StepFinished f when _stepStarts.TryGetValue((f.Image, f.Index), out var start):
                    var args = new Dictionary<string, string>
                    {
                        ["step"] = f.Index.ToString(System.Globalization.CultureInfo.InvariantCulture),
                        ["cached"] = f.Cached ? "true" : "false",
                    };
                    if (f.Layer is { } layer)
                    {
                        args["layer"] = layer.Digest.ToString();
                        args["layer size"] = layer.Size.ToString(System.Globalization.CultureInfo.InvariantCulture);
                    }
                    Add(f.Description, "step", f.Image, start, f.Duration, args);
                    break;
                case ExportStarted s:
                    _exportPhases[(s.Image, s.Format)] = ("prepare the disk", now);
                    break;
                case ExportProgressed p:
                    EndExportPhase(p.Image, p.Format, now);
                    _exportPhases[(p.Image, p.Format)] = (p.Message, now);
                    break;
                case ExportFinished e:
                    EndExportPhase(e.Image, e.Result.Format, now);
                    Add($"output {e.Result.Format}", "export", e.Image, now - e.Result.Duration, e.Result.Duration, new()
                    {
                        ["path"] = e.Result.Path,
                        ["up to date"] = e.Result.UpToDate ? "true" : "false",
                        ["incremental"] = e.Result.Incremental ? "true" : "false",
                        ["patched"] = e.Result.Patched ? "true" : "false",
                        ["bytes"] = e.Result.Bytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
                        ["bytes written"] = e.Result.BytesWritten.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    });
                    break;
                case TestPhaseFinished t when !t.Report.Cached && t.Report.SkippedBecause is null:
                    Add($"test {t.Report.Phase}", "test", t.Image, now - t.Report.Duration, t.Report.Duration, new()
                    {
                        ["checks"] = t.Report.Checks.Count.ToString(System.Globalization.CultureInfo.InvariantCulture),
                        ["passed"] = t.Report.Passed ? "true" : "false",
                    });
                    break;
                case CheckFinished c when !c.Check.Skipped:
                    Add(c.Check.Name, "check", c.Image, now - c.Check.Duration, c.Check.Duration, new()
                    {
                        ["phase"] = c.Phase,
                        ["passed"] = c.Check.Passed ? "true" : "false",
                    });
                    break;
                case StepPhase p:
                    var phaseArgs = new Dictionary<string, string>();
                    if (p.Step is { } step)
                    {
                        phaseArgs["step"] = step.ToString(System.Globalization.CultureInfo.InvariantCulture);
                    }
                    Add(p.Phase, "phase", p.Image, p.Start, p.Duration, phaseArgs);
                    break;
            }
        }
        Inner.Report(value);
    }

    /// <summary>An export's progress messages as spans: each lasts until the next message or the export's end.</summary>
    private void EndExportPhase(string image, string format, DateTimeOffset now)
    {
        if (_exportPhases.Remove((image, format), out var phase))
        {
            Add(phase.Phase, "export phase", image, phase.Start, now - phase.Start, []);
        }
    }

    private void Add(string name, string category, string image, DateTimeOffset start, TimeSpan duration, Dictionary<string, string> args)
    {
        if (!_lanes.TryGetValue(image, out int tid))
        {
            tid = image.Length == 0 ? 0 : _lanes.Count(l => l.Key.Length > 0) + 1;
            _lanes[image] = tid;
        }
        _events.Add((name, category, tid, (start - _origin).Ticks / 10.0, duration.Ticks / 10.0, args));
    }

    /// <summary>Writes the trace to <paramref name="path"/> atomically (a temp file renamed over it).</summary>
    public void Write(string path)
    {
        // The last resort may write it from another thread while the build's own ending does.
        lock (_writeGate)
        {
            WriteFile(path);
        }
    }

    private void WriteFile(string path)
    {
        var full = Path.GetFullPath(path);
        var temp = $"{full}.tmp-{Environment.ProcessId}";
        int pid = Environment.ProcessId;
        try
        {
            using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write))
            using (var w = new Utf8JsonWriter(file, new JsonWriterOptions { Indented = false }))
            {
                w.WriteStartObject();
                w.WriteString("displayTimeUnit", "ms");
                w.WriteStartArray("traceEvents");
                lock (_gate)
                {
                    foreach (var (image, tid) in _lanes.OrderBy(l => l.Value))
                    {
                        w.WriteStartObject();
                        w.WriteString("name", "thread_name");
                        w.WriteString("ph", "M");
                        w.WriteNumber("pid", pid);
                        w.WriteNumber("tid", tid);
                        w.WriteStartObject("args");
                        w.WriteString("name", image.Length == 0 ? "build" : image);
                        w.WriteEndObject();
                        w.WriteEndObject();
                    }
                    if (_failure is { } failure)
                    {
                        w.WriteStartObject();
                        w.WriteString("name", "error");
                        w.WriteString("cat", "error");
                        w.WriteString("ph", "i");
                        w.WriteString("s", "g");
                        w.WriteNumber("ts", Math.Round(failure.Ts, 1));
                        w.WriteNumber("pid", pid);
                        w.WriteNumber("tid", 0);
                        w.WriteStartObject("args");
                        w.WriteString("error", failure.Message);
                        w.WriteString("stack", failure.Stack);
                        w.WriteEndObject();
                        w.WriteEndObject();
                    }
                    foreach (var e in _events.OrderBy(e => e.Ts).ThenByDescending(e => e.Dur))
                    {
                        w.WriteStartObject();
                        w.WriteString("name", e.Name);
                        w.WriteString("cat", e.Category);
                        w.WriteString("ph", "X");
                        w.WriteNumber("ts", Math.Round(e.Ts, 1));
                        w.WriteNumber("dur", Math.Round(e.Dur, 1));
                        w.WriteNumber("pid", pid);
                        w.WriteNumber("tid", e.Tid);
                        w.WriteStartObject("args");
                        foreach (var (k, v) in e.Args)
                        {
                            w.WriteString(k, v);
                        }
                        w.WriteEndObject();
                        w.WriteEndObject();
                    }
                }
                w.WriteEndArray();
                w.WriteEndObject();
                w.Flush();
                file.Flush();
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }
}
