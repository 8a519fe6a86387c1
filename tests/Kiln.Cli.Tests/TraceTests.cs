using System.Text.Json;

namespace Kiln.Cli.Tests;

/// <summary><c>kiln build --trace FILE</c>: Chrome trace-event JSON of where a build's time went.</summary>
public sealed class TraceTests : IDisposable
{
    private readonly TempDir _store = new("kiln-store");

    public void Dispose() => _store.Dispose();

    private sealed record TraceEvent(string Name, string Category, int Tid, double Ts, double Dur, string? Step);

    private static List<TraceEvent> Read(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var events = new List<TraceEvent>();
        foreach (var e in doc.RootElement.GetProperty("traceEvents").EnumerateArray())
        {
            if (e.GetProperty("ph").GetString() != "X")
            {
                continue;
            }
            Assert.True(e.GetProperty("pid").GetInt32() > 0);
            var args = e.GetProperty("args");
            events.Add(new TraceEvent(e.GetProperty("name").GetString()!, e.GetProperty("cat").GetString()!, e.GetProperty("tid").GetInt32(),
                e.GetProperty("ts").GetDouble(), e.GetProperty("dur").GetDouble(),
                args.TryGetProperty("step", out var s) ? s.GetString() : null));
        }
        return events;
    }

    [Fact]
    public void A_traced_build_writes_an_event_per_step_and_per_phase_and_a_cached_step_has_only_its_lookup()
    {
        using var ctx = new TinyContext("images:\n  tiny:\n    from: scratch\n    steps:\n" + TinyContext.RootStep +
            "      - run: echo hello > /etc/greeting\n");
        var trace = Path.Combine(ctx.Path, "out", "trace.json");
        Directory.CreateDirectory(Path.GetDirectoryName(trace)!);
        var r = KilnProcess.Run(_store.Path, "build", "--trace", trace, ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);

        var events = Read(trace);
        Assert.Contains(events, e => e.Name == "plan" && e.Tid == 0);
        var image = Assert.Single(events, e => e.Category == "image");
        Assert.Equal("tiny", image.Name);
        Assert.Contains(events, e => e.Name == "write image" && e.Step is null && e.Tid == image.Tid);
        Assert.Equal(2, events.Count(e => e.Category == "step" && e.Tid == image.Tid));
        string[] commit = ["cache lookup", "pack", "hash", "store blob", "commit snapshot", "cache store"];
        // A copy step writes to the store's disk: its tree, the snapshot to be, is fsynced while the layer is packed.
        Assert.Equal(commit.Append("copy").Append("sync snapshot").Order(StringComparer.Ordinal), PhasesOf(events, "0").Order(StringComparer.Ordinal));
        // A run step writes to a tmpfs by default: its snapshot is copied to the store while the layer is packed.
        Assert.Equal(commit.Append("sandbox").Append("copy snapshot").Order(StringComparer.Ordinal), PhasesOf(events, "1").Order(StringComparer.Ordinal));
        foreach (var e in events)
        {
            Assert.True(e.Ts >= 0 && e.Dur >= 0, $"{e.Name}: ts {e.Ts}, dur {e.Dur}");
            Assert.True(e.Ts >= image.Ts - 1000 || e.Tid == 0, $"{e.Name} starts before its image");
        }
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(trace)!, "*.tmp-*"));

        var again = KilnProcess.Run(_store.Path, "build", "--trace", trace, ctx.Path);
        Assert.True(again.ExitCode == 0, again.All);
        var cached = Read(trace);
        Assert.Equal(["cache lookup"], PhasesOf(cached, "1"));
    }

    [Fact]
    public void An_images_outputs_are_events_on_its_lane()
    {
        using var ctx = new TinyContext("images:\n  tiny:\n    from: scratch\n    steps:\n" + TinyContext.RootStep +
            "    outputs: [rootfs]\n");
        var trace = Path.Combine(ctx.Path, "trace.json");
        var r = KilnProcess.Run(_store.Path, "build", "--trace", trace, ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);

        var events = Read(trace);
        var image = Assert.Single(events, e => e.Category == "image");
        var output = Assert.Single(events, e => e.Category == "export");
        Assert.Equal("output rootfs", output.Name);
        Assert.Equal(image.Tid, output.Tid);
        Assert.True(output.Dur > 0 && output.Ts >= image.Ts, $"ts {output.Ts}, dur {output.Dur}");
    }

    private static IEnumerable<string> PhasesOf(List<TraceEvent> events, string step) =>
        events.Where(e => e.Category == "phase" && e.Step == step).Select(e => e.Name);
}
