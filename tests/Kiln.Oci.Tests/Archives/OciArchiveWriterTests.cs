using System.Formats.Tar;
using System.Text.Json;
using Kiln.Oci.Archives;

namespace Kiln.Oci.Tests.Archives;

public sealed class OciArchiveWriterTests
{
    [Fact]
    public async Task Writes_an_image_layout_with_the_manifest_named_by_ref_name_and_every_blob_once()
    {
        var image = new TestImage(("a.txt", "a"), ("b.txt", "b"), ("a.txt", "a")); // layers 1 and 3 are one blob
        var entries = TestImage.Entries(await image.OciArchiveAsync("web"));

        Assert.Equal(["oci-layout", "index.json", "blobs/", "blobs/sha256/"], entries.Take(4).Select(e => e.Name));
        var blobs = entries.Skip(4).Select(e => e.Name).ToList();
        var expected = image.Blobs.Keys.Select(d => "blobs/sha256/" + d.Hex).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(expected, blobs);
        foreach (var e in entries.Skip(4))
        {
            Assert.Equal(image.Blobs[Digest.Parse("sha256:" + e.Name["blobs/sha256/".Length..])], e.Data);
        }

        var index = OciJson.DeserializeIndex(entries[1].Data);
        var m = Assert.Single(index.Manifests);
        Assert.Equal(image.Manifest.Digest, m.Digest);
        Assert.Equal(image.Manifest.Size, m.Size);
        Assert.Equal("web", m.Annotations![Annotations.RefName]);
        using var layout = JsonDocument.Parse(entries[0].Data);
        Assert.Equal("1.0.0", layout.RootElement.GetProperty("imageLayoutVersion").GetString());
    }

    [Fact]
    public async Task Entries_have_root_owner_fixed_modes_and_the_epoch_as_mtime()
    {
        var epoch = DateTimeOffset.FromUnixTimeSeconds(1_700_000_000);
        var entries = TestImage.Entries(await new TestImage(("a", "a")).OciArchiveAsync(epoch: epoch));
        Assert.All(entries, e =>
        {
            Assert.Equal(0, e.Uid);
            Assert.Equal(0, e.Gid);
            Assert.Equal(epoch, e.MTime);
            Assert.Equal(e.Type == TarEntryType.Directory ? (UnixFileMode)0b111_101_101 : (UnixFileMode)0b110_100_100, e.Mode);
        });
    }

    [Fact]
    public async Task Two_writes_are_byte_identical_and_the_epoch_changes_them()
    {
        var image = new TestImage(("a", "a"), ("b", "b"));
        var first = await image.OciArchiveAsync();
        Assert.Equal(first, await image.OciArchiveAsync());
        Assert.NotEqual(first, await image.OciArchiveAsync(epoch: DateTimeOffset.FromUnixTimeSeconds(86400)));
    }

    [Fact]
    public async Task A_blob_that_does_not_match_its_digest_fails_the_write()
    {
        var image = new TestImage(("a", "a"));
        var layer = image.Layers[0].Digest;
        var bytes = image.Blobs[layer];
        bytes[^1] ^= 0xFF;
        var ex = await Assert.ThrowsAsync<ArchiveException>(() => image.OciArchiveAsync());
        Assert.Contains(layer.Value, ex.Message);
    }

    [Fact]
    public async Task A_blob_shorter_than_its_descriptor_fails_the_write()
    {
        var image = new TestImage(("a", "a"));
        var layer = image.Layers[0].Digest;
        image.Blobs[layer] = image.Blobs[layer][..^1];
        var ex = await Assert.ThrowsAsync<ArchiveException>(() => image.OciArchiveAsync());
        Assert.Contains("ended after", ex.Message);
    }

    [Fact]
    public async Task A_cancelled_write_stops_with_OperationCanceledException()
    {
        var image = new TestImage(("a", "a"));
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            OciArchiveWriter.WriteAsync(new MemoryStream(), image, image.Manifest, "web", new ArchiveOptions(), cancellationToken: cts.Token));
    }
}
