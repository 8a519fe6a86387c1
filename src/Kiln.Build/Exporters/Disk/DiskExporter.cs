using System.Diagnostics;
using Kiln.Build.Sandbox;
using Kiln.Build.Store;
using Kiln.Build.Store.Content;
using Kiln.Oci;

namespace Kiln.Build.Exporters.Disk;

/// <summary>Exports a stored image as a bootable server disk: <see cref="ExportFormat.Raw"/>, <see cref="ExportFormat.Qcow2"/>
/// or a libvirt <see cref="ExportFormat.Vagrant"/> box (whose disk also holds <see cref="VagrantAccess"/>). The disk has an MBR, a FAT boot partition with SYSLINUX, the
/// image's kernel and initrd, and an ext4 root holding exactly the image's files (see <see cref="DiskBuilder"/>).</summary>
/// <remarks>Every disk is kept in the store (<c>kiln/disks</c>, one per image name). When an image shares all but a few
/// top layers with a kept disk (an app change) and its kernel and size are unchanged, its disk is that disk with only
/// the changed paths applied (<see cref="IncrementalDisk"/>); anything doubtful falls back to a full build.
/// The export takes the store lock shared (so gc cannot remove what it reads): callers must not hold it exclusively.</remarks>
public static class DiskExporter
{
    public static async Task<ExportResult> ExportAsync(KilnStore store, ExportRequest request, IProgress<ExportEvent>? progress, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(request);
        if (!ExportFormats.IsDisk(request.Format))
        {
            throw new ArgumentException($"{ExportFormats.Name(request.Format)} is not a disk format", nameof(request));
        }
        var clock = Stopwatch.StartNew();
        var name = request.ImageName;
        void Report(string message) => progress?.Report(new ExportEvent(name, request.Format, message));

        using var output = new OutputFile(request.OutputPath);
        // Shared: garbage collection (exclusive) must not take the snapshots or the kept disk while we read them.
        using var storeLock = store.AcquireLock(exclusive: false, ct);

        var state = await ReadStateAsync(store, request, ct).ConfigureAwait(false);
        // A box gets what Vagrant needs as layers of its own, on top of the image; it keeps its disk under a name
        // no image can have (image names have no '+'), so the image's own disk stays as it is.
        var diskName = name;
        var diskManifest = request.Manifest.Digest;
        if (request.Format == ExportFormat.Vagrant)
        {
            // An image that cannot boot is refused before the box's apt step fetches packages for nothing.
            BootFiles.Find((await LayersAsync(store, request, state, ct).ConfigureAwait(false)).LayersTopFirst, name);
            state = await VagrantAccess.AddAsync(store, name, request.Manifest.Digest, state, request.StepOptions with { Epoch = request.Epoch }, Report, ct).ConfigureAwait(false);
            diskName = name + VagrantAccess.DiskSuffix;
            diskManifest = ContentStore.DescribeImage(state).Digest;
        }
        var (diffIds, layers) = await LayersAsync(store, request, state, ct).ConfigureAwait(false);
        var boot = BootFiles.Find(layers, name);
        var tree = new MergedTree(layers);
        var (used, entries) = DiskBuilder.Measure(tree, ct);
        long bootBytes = DiskLayout.BootBytesFor(boot);
        bool autoSized = request.DiskSizeBytes is null;
        var layout = request.DiskSizeBytes is { } size ? DiskLayout.Sized(size, bootBytes, used, name) : DiskLayout.Automatic(bootBytes, used);
        // Hashing kernel and initrd (tens of MiB) is a good part of an app change's disk update: a kept disk made from
        // the very same snapshot files already holds their identity.
        var bootSource = $"{boot.KernelHost}\n{boot.InitrdHost}";
        var bootIdentity = store.ListDisks().FirstOrDefault(e => e.BootSource == bootSource)?.BootIdentity
            ?? await boot.IdentityAsync(ct).ConfigureAwait(false);

        var work = store.CreateTempDir("disk");
        try
        {
            var raw = Path.Combine(work, "disk.raw");
            string? declined = "incremental disks are off for this export";
            DiskCacheEntry? basis = null;
            DiskCacheEntry? kept = null;
            IReadOnlyList<ByteRange>? written = null;
            if (request.AllowIncremental)
            {
                (basis, int shared, declined) = IncrementalDisk.Choose(store, diffIds, bootIdentity, layout, autoSized, used);
                if (basis is not null)
                {
                    Report($"applying {diffIds.Count - shared} changed layer(s) to the kept disk of {basis.Image}");
                    DebugfsPlan? plan;
                    (plan, declined) = IncrementalDisk.Prepare(store, basis, shared, diffIds, tree, work, ct);
                    if (plan is not null)
                    {
                        var next = basis with
                        {
                            Image = diskName,
                            Manifest = diskManifest.Value,
                            DiffIds = diffIds.Select(d => d.Value).ToList(),
                            ContentId = NewContentId(),
                            BootSource = bootSource,
                        };
                        (kept, written, declined) = await ApplyAsync(store, basis, next, plan, raw, work, ct).ConfigureAwait(false);
                    }
                    if (declined is not null)
                    {
                        Report($"building in full: {declined}");
                    }
                }
            }

            if (kept is null)
            {
                Report($"building a {DiskLayout.Mib(layout.DiskBytes)} disk ({DiskLayout.Mib(used)} of files, kernel {boot.Version})");
                var rootUuid = DiskIds.Uuid(diskManifest, "root uuid");
                await DiskBuilder.BuildAsync(work, raw, layout, boot, tree, entries, rootUuid, DiskIds.Uuid(diskManifest, "hash seed"),
                    DiskIds.DiskId(diskManifest), request.Epoch, ct).ConfigureAwait(false);
                var entry = new DiskCacheEntry
                {
                    Image = diskName,
                    Manifest = diskManifest.Value,
                    DiffIds = diffIds.Select(d => d.Value).ToList(),
                    RawFile = "disk.raw",
                    DiskBytes = layout.DiskBytes,
                    BootOffset = layout.BootOffset,
                    BootBytes = layout.BootBytes,
                    RootOffset = layout.RootOffset,
                    RootBytes = layout.RootBytes,
                    RootUuid = rootUuid,
                    BootIdentity = bootIdentity,
                    AutoSized = autoSized,
                    ContentId = NewContentId(),
                    BootSource = bootSource,
                };
                kept = await store.PutDiskAsync(entry, raw, ct).ConfigureAwait(false);
            }

            // After an app change the qcow2 written before from the basis disk needs only the ranges the update wrote: a
            // few hundred KiB in place rather than the whole disk into a new file (see docs/design.md, Incremental disks).
            string? patchDeclined = null;
            long bytesWritten = 0;
            bool patched = false;
            if (request.Format == ExportFormat.Qcow2 && written is not null && basis?.ContentId is { } was && request.OutputHoldsDisk == was
                && File.Exists(output.Target))
            {
                Report($"updating {Path.GetFileName(output.Target)} in place: {written.Count} range(s), {DiskLayout.Mib(written.Sum(r => r.Length))}");
                using (store.LockDisk(diskName, exclusive: false, ct))
                {
                    (bytesWritten, patchDeclined) = await DiskOutput.PatchQcow2Async(store.DiskRawPath(kept)!, written, output.Target, work, ct).ConfigureAwait(false);
                }
                patched = patchDeclined is null;
                if (!patched)
                {
                    Report($"writing in full: {patchDeclined}");
                }
            }
            if (!patched)
            {
                Report($"writing {ExportFormats.Name(request.Format)}");
                using (store.LockDisk(diskName, exclusive: false, ct))
                {
                    await DiskOutput.WriteAsync(request.Format, store.DiskRawPath(kept)!, kept.DiskBytes, output.PartialPath, work, request.Epoch, ct).ConfigureAwait(false);
                }
                output.Commit();
                bytesWritten = new FileInfo(output.Target).Length;
            }
            bool incremental = basis is not null && declined is null;
            return new ExportResult
            {
                OutputPath = output.Target,
                Format = request.Format,
                Bytes = new FileInfo(output.Target).Length,
                Incremental = incremental,
                Detail = (incremental
                    ? $"made from the kept disk of {basis!.Image} by applying the changed layers"
                    : $"built in full: {declined}")
                    + (patched ? $"; {Path.GetFileName(output.Target)} updated in place ({DiskLayout.Mib(bytesWritten)} written)" : ""),
                Elapsed = clock.Elapsed,
                Patched = patched,
                BytesWritten = bytesWritten,
                DiskContentId = kept.ContentId,
            };
        }
        finally
        {
            store.DeleteTempDir(work);
        }
    }

    /// <summary>Applies the plan and keeps the result as <paramref name="next"/>. The kept disk of the same image is
    /// changed in place (its record is dropped first, so a crash cannot leave a record naming a half-changed disk); a
    /// disk of another image is copied first. Returns the kept entry, or null with the reason it declined.</summary>
    private static async Task<(DiskCacheEntry? Kept, IReadOnlyList<ByteRange>? Written, string? Declined)> ApplyAsync(KilnStore store,
        DiskCacheEntry basis, DiskCacheEntry next, DebugfsPlan plan, string raw, string work, CancellationToken ct)
    {
        if (basis.Image == next.Image)
        {
            using (store.LockDisk(basis.Image, exclusive: true, ct))
            {
                if (store.TryGetDisk(basis.Image)?.RawFile != basis.RawFile)
                {
                    return (null, null, "the kept disk changed while planning (another export)");
                }
                store.ForgetDisk(basis.Image);
                var inPlace = store.DiskRawPath(basis)!;
                var (written, declined) = await IncrementalDisk.ApplyAsync(plan, inPlace, basis.RootOffset, work, ct).ConfigureAwait(false);
                if (declined is not null)
                {
                    return (null, null, declined);
                }
                await store.RecordDiskAsync(next, ct).ConfigureAwait(false);
                return (next, written, null);
            }
        }
        using (store.LockDisk(basis.Image, exclusive: false, ct))
        {
            if (store.DiskRawPath(basis) is not { } source || !File.Exists(source))
            {
                return (null, null, "the kept disk is gone (another export replaced it)");
            }
            var copy = await HostTool.RunAsync(HostPrograms.Cp.Name, ["--reflink=auto", "--sparse=always", source, raw], null, ct).ConfigureAwait(false);
            if (copy.ExitCode != 0)
            {
                return (null, null, $"copying the kept disk failed: {HostTool.Tail(copy.Output, 3)}");
            }
        }
        var (copyWritten, failed) = await IncrementalDisk.ApplyAsync(plan, raw, basis.RootOffset, work, ct).ConfigureAwait(false);
        return failed is not null ? (null, null, failed) : (await store.PutDiskAsync(next, raw, ct).ConfigureAwait(false), copyWritten, null);
    }

    private static string NewContentId() => Guid.NewGuid().ToString("N");

    private static async Task<ImageState> ReadStateAsync(KilnStore store, ExportRequest request, CancellationToken ct)
    {
        try
        {
            return await store.Content.ReadImageStateAsync(request.Manifest.Digest, ct).ConfigureAwait(false);
        }
        catch (StoreException e)
        {
            throw ExportException.Failed($"reading image {request.ImageName} from the store: {e.Message}", e);
        }
    }

    /// <summary>The image's snapshots, topmost first: those of layers that were pulled or imported are extracted now.</summary>
    private static async Task<(IReadOnlyList<Digest> DiffIds, IReadOnlyList<string> LayersTopFirst)> LayersAsync(KilnStore store, ExportRequest request,
        ImageState state, CancellationToken ct)
    {
        var diffIds = state.Config.RootFs.DiffIds;
        if (diffIds.Count == 0)
        {
            throw ExportException.BadInput($"image {request.ImageName} has no layers: there is nothing to put on a disk");
        }
        try
        {
            await store.Snapshots.EnsureAsync(state, request.StepOptions.Extraction, ct).ConfigureAwait(false);
        }
        catch (StoreException e)
        {
            throw ExportException.Failed($"image {request.ImageName}: {e.Message}", e);
        }
        return (diffIds, diffIds.Reverse().Select(store.Snapshots.SnapshotPath).ToList());
    }
}
