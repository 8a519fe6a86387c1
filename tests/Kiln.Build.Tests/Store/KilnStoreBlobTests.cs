using System.Text;
using Kiln.Build.Store;
using Kiln.Build.Store.Content;
using Kiln.Oci;

namespace Kiln.Build.Tests.Store;

public sealed class KilnStoreBlobTests
{
    [Fact]
    public async Task Blob_written_through_a_writer_is_committed_and_read_back()
    {
        using var t = new TestStore();
        var data = Encoding.UTF8.GetBytes("hello blob");
        Descriptor desc;
        await using (var w = t.Store.Content.CreateBlobWriter())
        {
            await w.WriteAsync(data.AsMemory(0, 5));
            w.Write(data, 5, data.Length - 5);
            desc = await w.CommitAsync(MediaTypes.LayerTar);
        }
        Assert.Equal(Digest.Compute(data), desc.Digest);
        Assert.Equal(data.Length, desc.Size);
        Assert.True(t.Store.Content.HasBlob(desc.Digest));
        Assert.Equal(Path.Combine(t.Root, "blobs", "sha256", desc.Digest.Hex), t.Store.Content.BlobPath(desc.Digest));
        Assert.Equal(data, await t.Store.Content.ReadBlobAsync(desc.Digest));
        using var s = t.Store.Content.OpenBlob(desc.Digest);
        Assert.Equal(data.Length, s.Length);
        Assert.Empty(Directory.EnumerateFileSystemEntries(t.IngestDir));
    }

    [Fact]
    public async Task Commit_with_a_wrong_expected_digest_throws_removes_the_ingest_file_and_leaves_blobs_unchanged()
    {
        using var t = new TestStore();
        var before = Directory.GetFiles(Path.Combine(t.Root, "blobs", "sha256"));
        var wrong = Digest.Compute("something else"u8);
        string ingest;
        await using (var w = t.Store.Content.CreateBlobWriter())
        {
            ingest = w.IngestPath;
            w.Write("actual content"u8);
            Assert.True(File.Exists(ingest));
            var e = await Assert.ThrowsAsync<StoreException>(() => w.CommitAsync(MediaTypes.LayerTar, wrong));
            Assert.Contains("mismatch", e.Message);
        }
        Assert.False(File.Exists(ingest));
        Assert.Equal(before, Directory.GetFiles(Path.Combine(t.Root, "blobs", "sha256")));
        Assert.False(t.Store.Content.HasBlob(Digest.Compute("actual content"u8)));
    }

    [Fact]
    public async Task A_blob_far_larger_than_one_writeback_span_is_stored_whole_from_sync_and_async_writes()
    {
        using var t = new TestStore();
        var data = new byte[27 << 20]; // over three 8 MiB writeback spans, ending mid-span
        new Random(7).NextBytes(data);
        Descriptor desc;
        await using (var w = t.Store.Content.CreateBlobWriter())
        {
            for (int i = 0, at = 0; at < data.Length; i++, at += 3 << 20)
            {
                var part = data.AsMemory(at, Math.Min(3 << 20, data.Length - at));
                if (i % 2 == 0)
                {
                    await w.WriteAsync(part);
                }
                else
                {
                    w.Write(part.Span);
                }
            }
            desc = await w.CommitAsync(MediaTypes.LayerTar);
        }
        Assert.Equal(Digest.Compute(data), desc.Digest);
        Assert.Equal(data.Length, desc.Size);
        Assert.Equal(data, await t.Store.Content.ReadBlobAsync(desc.Digest));
    }

    [Fact]
    public void Disposing_an_uncommitted_writer_leaves_no_ingest_file()
    {
        using var t = new TestStore();
        string ingest;
        using (var w = t.Store.Content.CreateBlobWriter())
        {
            ingest = w.IngestPath;
            w.Write("abandoned"u8);
        }
        Assert.False(File.Exists(ingest));
        Assert.Empty(Directory.EnumerateFileSystemEntries(t.IngestDir));
    }

    [Fact]
    public async Task Committing_a_blob_already_present_keeps_one_copy_and_drops_the_ingest_file()
    {
        using var t = new TestStore();
        var a = await t.Store.Content.WriteBlobAsync("same"u8.ToArray(), MediaTypes.LayerTar);
        await using var w = t.Store.Content.CreateBlobWriter();
        w.Write("same"u8);
        var b = await w.CommitAsync(MediaTypes.LayerTar, a.Digest);
        Assert.Equal(a, b);
        Assert.False(File.Exists(w.IngestPath));
        Assert.Single(Directory.GetFiles(Path.Combine(t.Root, "blobs", "sha256")));
    }

    [Fact]
    public async Task Reading_a_corrupted_blob_fails_with_a_digest_error()
    {
        using var t = new TestStore();
        var d = await t.Store.Content.WriteBlobAsync("good"u8.ToArray(), MediaTypes.LayerTar);
        File.WriteAllText(t.Store.Content.BlobPath(d.Digest), "evil");
        var e = await Assert.ThrowsAsync<StoreException>(() => t.Store.Content.ReadBlobAsync(d.Digest));
        Assert.Contains("corrupt", e.Message);
    }

    [Fact]
    public async Task Reading_a_missing_blob_fails_with_a_clear_error()
    {
        using var t = new TestStore();
        var d = Digest.Compute("nothing"u8);
        var e = await Assert.ThrowsAsync<StoreException>(() => t.Store.Content.ReadBlobAsync(d));
        Assert.Contains("not in the store", e.Message);
        Assert.Throws<StoreException>(() => t.Store.Content.OpenBlob(d));
    }

    [Theory]
    [InlineData("")]
    [InlineData("sha256:../../etc/passwd")]
    [InlineData("sha512:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")]
    [InlineData("sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef")]
    [InlineData("sha256:0123456789abcdef")]
    public void Malformed_digests_are_refused(string text)
    {
        Assert.Throws<StoreException>(() => ContentStore.ParseDigest(text));
    }

    [Fact]
    public void The_default_digest_is_refused_before_a_path_is_built()
    {
        using var t = new TestStore();
        Assert.Throws<StoreException>(() => t.Store.Content.BlobPath(default));
        Assert.Throws<StoreException>(() => t.Store.Snapshots.SnapshotPath(default));
    }
}
