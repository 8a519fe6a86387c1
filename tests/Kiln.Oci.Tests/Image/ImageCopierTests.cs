using Kiln.Oci.Image;

namespace Kiln.Oci.Tests.Image;

public sealed class ImageCopierTests
{
    private static readonly Platform Arm64 = new() { Os = "linux", Architecture = "arm64", Variant = "v8" };
    private static readonly Platform S390x = new() { Os = "linux", Architecture = "s390x" };

    private static Manifest ManifestOf(MemorySource source, Descriptor d) => OciJson.DeserializeManifest(source.Blobs[d.Digest]);

    [Fact]
    public async Task Copies_every_blob_then_the_manifest_then_the_name()
    {
        var source = new MemorySource();
        var image = source.Image("a", layers: 3);
        var sink = new MemorySink();
        var summary = await ImageCopier.CopyAsync(source, image, sink, new ImageCopyOptions { Name = "web" });

        var log = sink.Log.ToList();
        Assert.Equal(4, log.Count(l => l.StartsWith("blob ", StringComparison.Ordinal)));
        Assert.Equal(["manifest " + image.Digest.Short, "tag web " + image.Digest.Short], log[^2..]);
        Assert.Equal(image, summary.Root);
        Assert.Equal(4, summary.BlobsCopied);
        Assert.Equal(0, summary.BlobsSkipped);
        var m = ManifestOf(source, image);
        Assert.Equal(m.Layers.Sum(l => l.Size) + m.Config.Size, summary.BytesCopied);
        foreach (var (digest, bytes) in sink.Blobs)
        {
            Assert.Equal(digest, Digest.Compute(bytes));
        }
    }

    [Fact]
    public async Task Blobs_the_sink_has_are_skipped()
    {
        var source = new MemorySource();
        var image = source.Image("a", layers: 3);
        var sink = new MemorySink();
        var m = ManifestOf(source, image);
        sink.Blobs[m.Layers[0].Digest] = source.Blobs[m.Layers[0].Digest];
        sink.Blobs[m.Config.Digest] = source.Blobs[m.Config.Digest];
        var events = new List<ImageCopyEvent>();
        var summary = await ImageCopier.CopyAsync(source, image, sink, progress: new Recorder(events));

        Assert.Equal(2, summary.BlobsSkipped);
        Assert.Equal(2, summary.BlobsCopied);
        Assert.Equal(m.Layers[1].Size + m.Layers[2].Size, summary.BytesCopied);
        Assert.DoesNotContain("blob " + m.Layers[0].Digest.Short, sink.Log);
        Assert.Contains(events, e => e.Kind == ImageCopyEventKind.Skipped && e.Descriptor.Digest == m.Layers[0].Digest);
        Assert.Contains(events, e => e.Kind == ImageCopyEventKind.Copied && e.Descriptor.Digest == m.Layers[1].Digest && e.Bytes == m.Layers[1].Size);
    }

    [Fact]
    public async Task Blobs_are_copied_several_at_once_but_no_more_than_asked_and_keep_their_digests()
    {
        var source = new MemorySource();
        var image = source.Image("many", layers: 12);
        var sink = new MemorySink { Delay = TimeSpan.FromMilliseconds(20) };
        await ImageCopier.CopyAsync(source, image, sink, new ImageCopyOptions { Parallelism = 3 });

        Assert.InRange(sink.MostAtOnce, 2, 3);
        Assert.Equal(14, sink.Blobs.Count);
        Assert.All(sink.Blobs, kv => Assert.Equal(source.Blobs[kv.Key], kv.Value));
    }

    [Fact]
    public async Task A_layer_whose_bytes_do_not_match_its_digest_fails_the_copy_before_the_manifest()
    {
        var source = new MemorySource();
        var image = source.Image("a");
        var layer = ManifestOf(source, image).Layers[1];
        source.Blobs[layer.Digest][^1] ^= 0xFF;
        var sink = new MemorySink();
        var ex = await Assert.ThrowsAsync<ImageException>(() => ImageCopier.CopyAsync(source, image, sink, new ImageCopyOptions { Name = "web" }));

        Assert.Contains($"blob {layer.Digest} does not match its digest", ex.Message);
        Assert.False(sink.Blobs.ContainsKey(layer.Digest));
        Assert.DoesNotContain(sink.Log, l => l.StartsWith("manifest", StringComparison.Ordinal) || l.StartsWith("tag", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_tampered_manifest_is_refused_before_any_blob_is_copied()
    {
        var source = new MemorySource();
        var image = source.Image("a");
        source.Blobs[image.Digest][^2] ^= 0x01;
        var sink = new MemorySink();
        var ex = await Assert.ThrowsAsync<ImageException>(() => ImageCopier.CopyAsync(source, image, sink));
        Assert.Contains("does not match its digest", ex.Message);
        Assert.Empty(sink.Log);
    }

    [Fact]
    public async Task An_index_with_a_nested_index_gives_the_host_platforms_image_only()
    {
        var source = new MemorySource();
        var host = source.Image("host", platform: Platform.Host);
        var arm = source.Image("arm", platform: Arm64);
        var s390 = source.Image("s390", platform: S390x);
        var top = source.Index(source.Index(s390, host) with { Platform = null }, arm);
        var sink = new MemorySink();
        var summary = await ImageCopier.CopyAsync(source, top, sink, new ImageCopyOptions { Platform = Platform.Host, Name = "x" });

        Assert.Equal(host.Digest, summary.Root.Digest);
        var expected = ManifestOf(source, host).Layers.Select(l => l.Digest).Append(ManifestOf(source, host).Config.Digest).Append(host.Digest);
        Assert.Equal(expected.Select(d => d.Value).Order(), sink.Blobs.Keys.Select(d => d.Value).Order());
        Assert.Equal("tag x " + host.Digest.Short, sink.Log.Last());
    }

    [Fact]
    public async Task An_index_with_no_image_for_the_platform_names_the_platforms_there()
    {
        var source = new MemorySource();
        var top = source.Index(source.Index(source.Image("s", platform: S390x)), source.Image("a", platform: Arm64));
        var ex = await Assert.ThrowsAsync<ImageException>(() =>
            ImageCopier.CopyAsync(source, top, new MemorySink(), new ImageCopyOptions { Platform = new Platform { Os = "linux", Architecture = "riscv64" } }));
        Assert.Contains("no image for this host's platform (linux/riscv64)", ex.Message);
        // The nested index has no platform, so it fits any and is followed: the platforms named are those inside it.
        Assert.Contains("it has linux/s390x", ex.Message);
    }

    [Fact]
    public async Task An_index_copied_whole_writes_each_manifest_after_its_blobs_and_the_index_last()
    {
        var source = new MemorySource();
        var a = source.Image("a", platform: Arm64);
        var b = source.Image("b", platform: S390x);
        var inner = source.Index(b);
        var top = source.Index(a, inner);
        var sink = new MemorySink();
        var summary = await ImageCopier.CopyAsync(source, top, sink);

        Assert.Equal(top, summary.Root);
        Assert.Equal(source.Blobs.Keys.Select(d => d.Value).Order(), sink.Blobs.Keys.Select(d => d.Value).Order());
        var log = sink.Log.ToList();
        Assert.Equal(["manifest " + a.Digest.Short, "manifest " + b.Digest.Short, "manifest " + inner.Digest.Short, "manifest " + top.Digest.Short], log[^4..]);
        Assert.Equal(4, summary.ManifestsWritten);
    }

    [Fact]
    public async Task A_blob_listed_with_two_sizes_is_refused()
    {
        var source = new MemorySource();
        var layer = source.Add("layer"u8.ToArray(), MediaTypes.LayerTar);
        var config = source.Add(OciJson.Serialize(new ImageConfig { RootFs = new RootFs { DiffIds = [layer.Digest, layer.Digest] } }), MediaTypes.ImageConfig);
        var image = source.Add(OciJson.Serialize(new Manifest { Config = config, Layers = [layer, layer with { Size = 99 }] }), MediaTypes.ImageManifest);
        var ex = await Assert.ThrowsAsync<ImageException>(() => ImageCopier.CopyAsync(source, image, new MemorySink()));
        Assert.Contains("two sizes", ex.Message);
    }

    private sealed class Recorder(List<ImageCopyEvent> events) : IProgress<ImageCopyEvent>
    {
        public void Report(ImageCopyEvent value)
        {
            lock (events)
            {
                events.Add(value);
            }
        }
    }
}
