using System.Collections.Concurrent;
using System.Diagnostics;
using Kiln.Oci.Image;

namespace Kiln.Cli;

/// <summary>The remote cache's layer transfers during a build. On a terminal the build's status line already holds the
/// live display, so the transfer under way shows there (bytes of size, rate); elsewhere one plain line per blob when it
/// is done, skipped or mounted, as <c>kiln push</c> and <c>kiln pull</c> print them.</summary>
internal sealed class CacheTransferDisplay : IProgress<ImageCopyEvent>
{
    private readonly BuildRenderer _renderer;
    private readonly TransferRenderer _plain;
    private readonly string _verb;
    private readonly bool _live;
    private readonly ConcurrentDictionary<string, Stopwatch> _clocks = new(StringComparer.Ordinal);

    public CacheTransferDisplay(BuildRenderer renderer, TextWriter plain, string verb, bool live)
    {
        _renderer = renderer;
        _plain = new TransferRenderer(plain, "remote cache: " + verb);
        _verb = verb;
        _live = live;
    }

    public void Report(ImageCopyEvent value)
    {
        if (!_live)
        {
            _plain.Report(value);
            return;
        }
        var d = value.Descriptor;
        if (value.Kind == ImageCopyEventKind.Started)
        {
            _clocks[d.Digest.Value] = Stopwatch.StartNew();
        }
        if (value.Kind is ImageCopyEventKind.Started or ImageCopyEventKind.Progress && _clocks.TryGetValue(d.Digest.Value, out var clock))
        {
            string verb = _verb == "fetched" ? "fetching" : "pushing";
            _renderer.Status?.Invoke($"remote cache: {verb} {TransferRenderer.Short(d.Digest.Value)} {BuildRenderer.Size(value.Bytes)} of "
                + $"{BuildRenderer.Size(d.Size)} ({TransferRenderer.Rate(value.Bytes, clock.Elapsed.TotalSeconds)})");
        }
    }
}
