using Kiln.Build.Layers;
using Kiln.Build.Store;
using Kiln.Build.Store.Snapshots;
using Kiln.Oci;

namespace Kiln.Build.Execution;

/// <summary>Turns a directory of changes into the next image state: packs it as a layer blob, then keeps
/// the directory itself as the layer's snapshot (a rename, never a second extraction), or, when the directory is on a
/// step's tmpfs, a copy of it on the store's disk.</summary>
internal static class LayerCommit
{
    /// <param name="inMemory">The changes are on a tmpfs (<see cref="KilnStore.CreateMemoryTempDir"/>): the snapshot
    /// is a copy onto the store's disk, made while the layer is packed.</param>
    /// <param name="early">Given, and the changes are on disk (they become the snapshot): the next state is handed to it as
    /// soon as the layer is packed, and the snapshot is moved into place only once it is released (see
    /// <see cref="EarlyLayer"/>).</param>
    public static async Task<ImageState> CommitAsync(KilnStore store, string changesDir, ImageState state, string createdBy, BuildOptions options, CancellationToken ct,
        PhaseClock? phases = null, bool inMemory = false, EarlyLayer? early = null)
    {
        if (!Directory.EnumerateFileSystemEntries(changesDir).Any())
        {
            return AddHistory(state, createdBy, options, emptyLayer: true);
        }
        string? copyDir = inMemory ? store.CreateTempDir("snapshot") : null;
        try
        {
            return await CommitAsync(store, changesDir, copyDir, state, createdBy, options, ct, phases, copyDir is null ? early : null).ConfigureAwait(false);
        }
        finally
        {
            if (copyDir is not null)
            {
                store.DeleteTempDir(copyDir); // gone already when it became the snapshot
            }
        }
    }

    private static async Task<ImageState> CommitAsync(KilnStore store, string changesDir, string? copyDir, ImageState state, string createdBy,
        BuildOptions options, CancellationToken ct, PhaseClock? phases, EarlyLayer? early)
    {
        Task? copy = null;
        void CopySnapshot()
        {
            using (phases?.Measure("copy snapshot"))
            {
                TreeCopier.Copy(changesDir, copyDir!, CopyThreads, ct);
            }
        }
        // A tree of many small files is copied while the layer is packed: its copy waits on the disk, not the CPU.
        // A tree of much data is copied after: both would compete for the cores, and the copy would slow the pack.
        // A tree on disk already (it becomes the snapshot) is made durable while the layer is packed: fsyncs wait on the
        // disk too. A copy is made durable at its commit.
        bool copyAfterPack = copyDir is not null && KilnStore.TempSpace(changesDir) is var (free, total) && total - free > ConcurrentCopyLimit;
        if (copyDir is null)
        {
            copy = Task.Run(() =>
            {
                using (phases?.Measure("sync snapshot"))
                {
                    SnapshotStore.SyncPreparedSnapshot(changesDir);
                }
            }, ct);
        }
        else if (!copyAfterPack)
        {
            copy = Task.Run(CopySnapshot, ct);
        }
        PackedLayer? packed = null;
        Descriptor blob;
        bool handedOver = false;
        try
        {
            try
            {
                using (var writer = store.Content.CreateBlobWriter())
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
                    if (early is not null)
                    {
                        // The files are final: what reads them may start while they and the blob are made durable.
                        store.Snapshots.ReadPreparedSnapshot(packed.DiffId, changesDir);
                        handedOver = early.HandOver(Next(state, new Descriptor { MediaType = packed.MediaType, Digest = packed.Digest, Size = packed.Size },
                            packed.DiffId, createdBy, options));
                    }
                    using (phases?.Measure("store blob"))
                    {
                        blob = await writer.CommitAsync(packed.MediaType, packed.Digest, ct).ConfigureAwait(false);
                    }
                }
            }
            catch when (copy is not null)
            {
                // The copy writes into a dir the caller deletes (and the sync reads it): let it end first.
                await copy.ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default).ConfigureAwait(false);
                throw;
            }
            if (copy is not null)
            {
                await copy.ConfigureAwait(false);
            }
            else if (copyAfterPack)
            {
                await Task.Run(CopySnapshot, ct).ConfigureAwait(false);
            }
            if (handedOver)
            {
                early!.SetDurable();
            }
        }
        finally
        {
            if (handedOver)
            {
                // Moved (or, on failure, deleted by the caller) only once nothing reads the prepared dir.
                await early!.Released.ConfigureAwait(false);
            }
            if (packed is not null)
            {
                store.Snapshots.ForgetPreparedSnapshot(packed.DiffId);
            }
        }
        using (phases?.Measure("commit snapshot"))
        {
            store.Snapshots.CommitSnapshot(copyDir ?? changesDir, packed!.DiffId, synced: copyDir is null);
        }
        return Next(state, blob, packed.DiffId, createdBy, options);
    }

    private static ImageState Next(ImageState state, Descriptor blob, Digest diffId, string createdBy, BuildOptions options) =>
        AddHistory(state with
        {
            Layers = [.. state.Layers, blob],
            Config = state.Config with
            {
                RootFs = state.Config.RootFs with { DiffIds = [.. state.Config.RootFs.DiffIds, diffId] },
            },
        }, createdBy, options, emptyLayer: false);

    /// <summary>Creates in flight while a snapshot is copied to disk (see <see cref="TreeCopier"/>).</summary>
    private const int CopyThreads = 16;

    /// <summary>Bytes of changes up to which the snapshot is copied while the layer is packed.</summary>
    private const long ConcurrentCopyLimit = 64L << 20;

    public static ImageState AddHistory(ImageState state, string createdBy, BuildOptions options, bool emptyLayer) =>
        state with
        {
            Config = state.Config with
            {
                History = [.. state.Config.History, new HistoryEntry { Created = options.Timestamp, CreatedBy = createdBy, EmptyLayer = emptyLayer }],
            },
        };

    /// <summary>The snapshot dirs of a state's layers, topmost first (overlay lowerdir order); a layer read before it is
    /// durable (<see cref="EarlyLayer"/>) is read from the dir it is prepared in.</summary>
    public static IReadOnlyList<string> LowerDirs(KilnStore store, ImageState state) =>
        [.. state.Config.RootFs.DiffIds.Reverse().Select(store.Snapshots.SnapshotDirToRead)];
}
