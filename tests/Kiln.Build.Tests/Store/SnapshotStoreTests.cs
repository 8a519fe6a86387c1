using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using Kiln.Build.Store;
using Kiln.Oci;

namespace Kiln.Build.Tests.Store;

/// <summary>Snapshots extracted on first use (<see cref="Kiln.Build.Store.Snapshots.SnapshotStore.EnsureAsync"/>): from
/// the blob alone, once, and never left half-made where a snapshot counts as present.</summary>
public sealed class SnapshotStoreTests
{
    /// <summary>A gzip layer of <paramref name="files"/> files of random bytes written as a blob only, as a pull
    /// leaves it, on top of <paramref name="parent"/>.</summary>
    private static async Task<ImageState> AddBlobOnlyAsync(TestStore t, ImageState parent, string prefix, int files, int size = 4096)
    {
        var tar = new MemoryStream();
        using (var writer = new TarWriter(tar, TarEntryFormat.Pax, leaveOpen: true))
        {
            for (int i = 0; i < files; i++)
            {
                writer.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, $"{prefix}{i:D4}")
                {
                    DataStream = new MemoryStream(RandomNumberGenerator.GetBytes(size)),
                    Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                    ModificationTime = DateTimeOffset.UnixEpoch,
                });
            }
        }
        var gz = new MemoryStream();
        using (var z = new GZipStream(gz, CompressionLevel.Fastest, leaveOpen: true))
        {
            z.Write(tar.ToArray());
        }
        var layer = await t.Store.Content.WriteBlobAsync(gz.ToArray(), MediaTypes.LayerGzip);
        return parent with
        {
            Layers = [.. parent.Layers, layer],
            Config = parent.Config with { RootFs = new RootFs { DiffIds = [.. parent.Config.RootFs.DiffIds, Digest.Compute(tar.ToArray())] } },
        };
    }

    private static ulong Inode(string path) => Kiln.Build.Native.LibC.Lstat(path).Inode;

    [Fact]
    public async Task Layers_with_a_blob_only_are_extracted_once_however_many_ask_at_once()
    {
        using var t = new TestStore();
        var state = await AddBlobOnlyAsync(t, TestStore.Empty, "a", 20);
        state = await AddBlobOnlyAsync(t, state, "b", 20);
        Assert.DoesNotContain(state.Config.RootFs.DiffIds, t.Store.Snapshots.HasSnapshot);

        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => t.Store.Snapshots.EnsureAsync(state))));

        var (first, second) = (t.Store.Snapshots.SnapshotPath(state.Config.RootFs.DiffIds[0]), t.Store.Snapshots.SnapshotPath(state.Config.RootFs.DiffIds[1]));
        Assert.Equal(20, Directory.GetFiles(first).Length);
        Assert.Equal(20, Directory.GetFiles(second).Length);
        Assert.Empty(Directory.GetFileSystemEntries(t.TmpDir));
        var inode = Inode(first);
        await t.Store.Snapshots.EnsureAsync(state);
        Assert.Equal(inode, Inode(first)); // present: not extracted again
    }

    [Fact]
    public async Task An_extraction_cut_off_halfway_leaves_no_snapshot_and_is_done_whole_on_the_next_use()
    {
        using var t = new TestStore();
        var state = await AddBlobOnlyAsync(t, TestStore.Empty, "f", 64);
        var blob = t.Store.Content.BlobPath(state.Layers[0].Digest);
        var whole = File.ReadAllBytes(blob);
        // The second half of the blob is gone: the extraction writes the first files, then fails.
        File.WriteAllBytes(blob, whole[..(whole.Length / 2)]);

        var e = await Assert.ThrowsAsync<StoreException>(() => t.Store.Snapshots.EnsureAsync(state));
        Assert.Contains(state.Layers[0].Digest.Value, e.Message);
        Assert.False(t.Store.Snapshots.HasSnapshot(state.Config.RootFs.DiffIds[0]));
        Assert.False(Path.Exists(t.Store.Snapshots.SnapshotPath(state.Config.RootFs.DiffIds[0])));
        Assert.Empty(Directory.GetFileSystemEntries(t.TmpDir));

        File.WriteAllBytes(blob, whole);
        await t.Store.Snapshots.EnsureAsync(state);
        Assert.Equal(64, Directory.GetFiles(t.Store.Snapshots.SnapshotPath(state.Config.RootFs.DiffIds[0])).Length);
    }

    [Fact]
    public async Task What_a_process_killed_mid_extraction_left_is_removed_at_the_next_open_and_never_counts_as_a_snapshot()
    {
        using var t = new TestStore();
        var state = await AddBlobOnlyAsync(t, TestStore.Empty, "f", 8);
        // A dead process's extraction: its temp dir with part of the layer in it.
        var partial = Path.Combine(t.TmpDir, "999999-extract-0123abcd", "layer");
        Directory.CreateDirectory(partial);
        File.WriteAllText(Path.Combine(partial, "f0000"), "cut short");
        Assert.False(t.Store.Snapshots.HasSnapshot(state.Config.RootFs.DiffIds[0]));

        t.Reopen();
        Assert.Empty(Directory.GetFileSystemEntries(t.TmpDir));
        await t.Store.Snapshots.EnsureAsync(state);
        var snapshot = t.Store.Snapshots.SnapshotPath(state.Config.RootFs.DiffIds[0]);
        Assert.Equal(8, Directory.GetFiles(snapshot).Length);
        Assert.Equal(4096, new FileInfo(Path.Combine(snapshot, "f0000")).Length);
    }

    [Fact]
    public async Task A_layer_that_unpacks_to_another_diff_id_or_has_no_blob_is_refused_naming_it()
    {
        using var t = new TestStore();
        var a = await AddBlobOnlyAsync(t, TestStore.Empty, "a", 2);
        var b = await AddBlobOnlyAsync(t, TestStore.Empty, "b", 2);
        var swapped = a with { Config = a.Config with { RootFs = b.Config.RootFs } };

        var e = await Assert.ThrowsAsync<StoreException>(() => t.Store.Snapshots.EnsureAsync(swapped));
        Assert.Contains($"unpacks to {a.Config.RootFs.DiffIds[0]}", e.Message);
        Assert.False(t.Store.Snapshots.HasSnapshot(b.Config.RootFs.DiffIds[0]));
        Assert.Empty(Directory.GetFileSystemEntries(t.TmpDir));

        File.Delete(t.Store.Content.BlobPath(b.Layers[0].Digest));
        var missing = await Assert.ThrowsAsync<StoreException>(() => t.Store.Snapshots.EnsureAsync(b));
        Assert.Contains(b.Layers[0].Digest.Value, missing.Message);
        Assert.Contains("not in the store", missing.Message);
    }
}
