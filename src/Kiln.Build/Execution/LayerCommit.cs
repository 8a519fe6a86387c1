using Kiln.Build.Layers;
using Kiln.Build.Store;
using Kiln.Oci;

namespace Kiln.Build.Execution;

/// <summary>Turns a directory of changes into the next image state: packs it as a layer blob, then keeps
/// the directory itself as the layer's snapshot (a rename, never a second extraction).</summary>
internal static class LayerCommit
{
    public static async Task<ImageState> CommitAsync(KilnStore store, string changesDir, ImageState state, string createdBy, BuildOptions options, CancellationToken ct,
        PhaseClock? phases = null)
    {
        if (!Directory.EnumerateFileSystemEntries(changesDir).Any())
        {
            return AddHistory(state, createdBy, options, emptyLayer: true);
        }
        PackedLayer packed;
        Descriptor blob;
        using (var writer = store.CreateBlobWriter())
        {
            var timings = new PackTimings();
            using (var pack = phases?.Measure("pack"))
            {
                packed = await LayerPacker.PackAsync(changesDir, writer, options.Compression, options.Epoch, timings, ct).ConfigureAwait(false);
                if (pack is { } p)
                {
                    phases!.Report("hash", p.Start, timings.Hash);
                }
            }
            using (phases?.Measure("store blob"))
            {
                blob = await writer.CommitAsync(packed.MediaType, packed.Digest, ct).ConfigureAwait(false);
            }
        }
        using (phases?.Measure("commit snapshot"))
        {
            store.CommitSnapshot(changesDir, packed.DiffId);
        }
        var next = state with
        {
            Layers = [.. state.Layers, blob],
            Config = state.Config with
            {
                RootFs = state.Config.RootFs with { DiffIds = [.. state.Config.RootFs.DiffIds, packed.DiffId] },
            },
        };
        return AddHistory(next, createdBy, options, emptyLayer: false);
    }

    public static ImageState AddHistory(ImageState state, string createdBy, BuildOptions options, bool emptyLayer) =>
        state with
        {
            Config = state.Config with
            {
                History = [.. state.Config.History, new HistoryEntry { Created = options.Timestamp, CreatedBy = createdBy, EmptyLayer = emptyLayer }],
            },
        };

    /// <summary>The snapshot dirs of a state's layers, topmost first (overlay lowerdir order).</summary>
    public static IReadOnlyList<string> LowerDirs(KilnStore store, ImageState state) =>
        [.. state.Config.RootFs.DiffIds.Reverse().Select(store.SnapshotPath)];
}
