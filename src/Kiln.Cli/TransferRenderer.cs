using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Kiln.Oci.Image;
using Spectre.Console;

namespace Kiln.Cli;

/// <summary>Shows a push or pull as it goes: on a terminal a progress bar per blob (bytes, rate) with Spectre.Console,
/// elsewhere one plain line per blob when it is done, skipped or mounted.</summary>
internal sealed class TransferRenderer : IProgress<ImageCopyEvent>
{
    private readonly TextWriter _plain;
    private readonly string _verb;
    private readonly ConcurrentDictionary<string, (Stopwatch Clock, ProgressTask? Bar)> _blobs = new(StringComparer.Ordinal);
    private ProgressContext? _live;

    /// <param name="verb">"pushed" or "pulled", for the lines.</param>
    public TransferRenderer(TextWriter plain, string verb)
    {
        _plain = plain;
        _verb = verb;
    }

    /// <summary>Whether to draw bars: a terminal that is not dumb, and stdout not taken by --json.</summary>
    public static bool IsLive(bool json) =>
        !json && !Console.IsOutputRedirected && CliEnvironment.Get("TERM") is { } term && term != "dumb";

    /// <summary>Runs <paramref name="work"/> under the live display when <paramref name="live"/>, else plainly.</summary>
    public async Task<T> RunAsync<T>(bool live, Func<Task<T>> work)
    {
        if (!live)
        {
            return await work().ConfigureAwait(false);
        }
        return await AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new DownloadedColumn(), new TransferSpeedColumn())
            .StartAsync(async ctx =>
            {
                _live = ctx;
                return await work().ConfigureAwait(false);
            }).ConfigureAwait(false);
    }

    public void Report(ImageCopyEvent value)
    {
        var d = value.Descriptor;
        string id = Short(d.Digest.Value);
        switch (value.Kind)
        {
            case ImageCopyEventKind.Started:
                _blobs[d.Digest.Value] = (Stopwatch.StartNew(), _live?.AddTask(Markup.Escape(id), maxValue: Math.Max(1, d.Size)));
                break;
            case ImageCopyEventKind.Progress:
                if (_blobs.TryGetValue(d.Digest.Value, out var running) && running.Bar is { } bar)
                {
                    bar.Value = value.Bytes;
                }
                break;
            case ImageCopyEventKind.Copied:
                if (_blobs.TryGetValue(d.Digest.Value, out var done))
                {
                    if (done.Bar is { } finished)
                    {
                        finished.Value = finished.MaxValue;
                        finished.StopTask();
                    }
                    else
                    {
                        var seconds = done.Clock.Elapsed.TotalSeconds;
                        Line($"{_verb} {id} {BuildRenderer.Size(d.Size)} in {Seconds(seconds)} ({Rate(d.Size, seconds)})");
                    }
                }
                break;
            case ImageCopyEventKind.Skipped:
                Done(id, "present, skipped", d.Size);
                break;
            case ImageCopyEventKind.Mounted:
                Done(id, "mounted", d.Size);
                break;
            case ImageCopyEventKind.ManifestWritten:
                break;
        }
    }

    private void Done(string id, string what, long size)
    {
        if (_live is { } live)
        {
            var bar = live.AddTask(Markup.Escape($"{id} {what}"), maxValue: Math.Max(1, size));
            bar.Value = bar.MaxValue;
            bar.StopTask();
        }
        else
        {
            Line($"{id} {what} ({BuildRenderer.Size(size)})");
        }
    }

    private void Line(string text)
    {
        lock (_plain)
        {
            _plain.WriteLine(text);
        }
    }

    internal static string Short(string digest) => digest.StartsWith("sha256:", StringComparison.Ordinal) && digest.Length > 19 ? digest[..19] : digest;

    internal static string Seconds(double seconds) => seconds.ToString("0.0", CultureInfo.InvariantCulture) + " s";

    internal static string Rate(long bytes, double seconds) => seconds <= 0 ? "-" : BuildRenderer.Size((long)(bytes / seconds)) + "/s";
}
