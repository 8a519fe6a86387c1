using System.Text;
using Kiln.Oci.Image;

namespace Kiln.Oci.Tests.Image;

public sealed class IndexSelectionTests
{
    private static readonly Platform Amd64V3 = new() { Os = "linux", Architecture = "amd64", Variant = "v3" };

    private static Descriptor Entry(string name, string arch, string? variant = null, string mediaType = MediaTypes.ImageManifest) => new()
    {
        MediaType = mediaType,
        Digest = Digest.Compute(Encoding.UTF8.GetBytes(name)),
        Size = name.Length,
        Platform = new Platform { Os = "linux", Architecture = arch, Variant = variant },
    };

    private static readonly Descriptor Top = new() { MediaType = MediaTypes.ImageIndex, Digest = Digest.Compute("top"u8), Size = 3 };

    [Fact]
    public void Picks_the_host_platform_out_of_others()
    {
        var index = new ImageIndex { Manifests = [Entry("arm", "arm64", "v8"), Entry("x86", "amd64"), Entry("s390", "s390x")] };
        Assert.Equal(Entry("x86", "amd64"), IndexSelection.Select(index, Top, Amd64V3, "test"));
    }

    [Fact]
    public void Picks_the_highest_amd64_level_the_host_runs_and_never_a_higher_one()
    {
        var index = new ImageIndex { Manifests = [Entry("v1", "amd64"), Entry("v4", "amd64", "v4"), Entry("v3", "amd64", "v3"), Entry("v2", "amd64", "v2")] };
        Assert.Equal("v3", IndexSelection.Select(index, Top, Amd64V3, "test").Platform!.Variant);
        var v2Host = Amd64V3 with { Variant = "v2" };
        Assert.Equal("v2", IndexSelection.Select(index, Top, v2Host, "test").Platform!.Variant);
        var v1Host = Amd64V3 with { Variant = null };
        Assert.Null(IndexSelection.Select(index, Top, v1Host, "test").Platform!.Variant);
    }

    [Theory]
    [InlineData("arm64", null, "arm64", "v8", true)]
    [InlineData("arm64", "v8", "aarch64", null, true)]
    [InlineData("arm", "v7", "arm", "v6", true)]
    [InlineData("arm", "v6", "arm", "v7", false)]
    [InlineData("amd64", "v2", "x86_64", null, true)]
    [InlineData("amd64", null, "amd64", "v2", false)]
    [InlineData("riscv64", null, "riscv64", null, true)]
    [InlineData("amd64", "v3", "arm64", null, false)]
    public void Variants_fit_where_the_host_runs_them(string hostArch, string? hostVariant, string imageArch, string? imageVariant, bool fits)
    {
        var host = new Platform { Os = "linux", Architecture = hostArch, Variant = hostVariant };
        var image = new Platform { Os = "linux", Architecture = imageArch, Variant = imageVariant };
        Assert.Equal(fits, host.Fit(image) is not null);
    }

    [Fact]
    public void Entries_that_are_not_images_are_passed_over_and_an_entry_without_platform_fits_last()
    {
        var attestation = Entry("att", "unknown") with { Platform = null, MediaType = "application/vnd.example.sig" };
        var bare = Entry("bare", "amd64") with { Platform = null };
        var index = new ImageIndex { Manifests = [attestation, bare, Entry("x86", "amd64")] };
        Assert.Equal(Entry("x86", "amd64"), IndexSelection.Select(index, Top, Amd64V3, "test"));
        Assert.Equal(bare, IndexSelection.Select(new ImageIndex { Manifests = [attestation, bare] }, Top, Amd64V3, "test"));
    }

    [Fact]
    public void No_fitting_entry_is_an_error_naming_the_platforms_there()
    {
        var index = new ImageIndex { Manifests = [Entry("arm", "arm64", "v8"), Entry("s390", "s390x"), Entry("arm2", "arm64", "v8")] };
        var ex = Assert.Throws<ImageException>(() => IndexSelection.Select(index, Top, Amd64V3, "oci:/x"));
        Assert.Equal($"oci:/x: the index {Top.Digest} has no image for this host's platform (linux/amd64/v3); it has linux/arm64/v8, linux/s390x", ex.Message);
    }

    [Fact]
    public void Resolves_nested_indexes_down_to_a_manifest_reading_each_document_once()
    {
        var manifest = Entry("x86", "amd64");
        var innerIndex = OciJson.Serialize(new ImageIndex { Manifests = [Entry("arm", "arm64"), manifest] });
        var inner = new Descriptor { MediaType = MediaTypes.DockerManifestList, Digest = Digest.Compute(innerIndex), Size = innerIndex.Length };
        var outerIndex = OciJson.Serialize(new ImageIndex { Manifests = [inner] });
        var outer = new Descriptor { MediaType = MediaTypes.ImageIndex, Digest = Digest.Compute(outerIndex), Size = outerIndex.Length };
        var docs = new Dictionary<Digest, byte[]> { [inner.Digest] = innerIndex, [outer.Digest] = outerIndex };
        var reads = new List<Digest>();
        byte[] Read(Descriptor d)
        {
            reads.Add(d.Digest);
            return IndexSelection.ReadDocument(d, x => new MemoryStream(docs[x.Digest]), "test");
        }
        Assert.Equal(manifest, IndexSelection.Resolve(outer, Amd64V3, Read, "test"));
        Assert.Equal([outer.Digest, inner.Digest], reads);
        Assert.Equal(manifest, IndexSelection.Resolve(manifest, Amd64V3, Read, "test"));
    }

    [Fact]
    public void A_document_whose_bytes_do_not_match_or_that_is_too_large_or_of_another_kind_is_refused()
    {
        var bytes = "{\"manifests\":[]}"u8.ToArray();
        var d = new Descriptor { MediaType = MediaTypes.ImageIndex, Digest = Digest.Compute("other"u8), Size = bytes.Length };
        Assert.Contains("does not match its digest", Assert.Throws<ImageException>(() => IndexSelection.ReadDocument(d, _ => new MemoryStream(bytes), "t")).Message);
        Assert.Contains("at most 4 MiB", Assert.Throws<ImageException>(() => IndexSelection.ReadDocument(d with { Size = 5 << 20 }, _ => new MemoryStream(bytes), "t")).Message);
        Assert.Contains("at most 4 MiB", Assert.Throws<ImageException>(() => IndexSelection.ReadDocument(d with { Size = -1 }, _ => new MemoryStream(bytes), "t")).Message);
        var other = d with { MediaType = "application/vnd.example.thing" };
        Assert.Contains("is not an image manifest or index", Assert.Throws<ImageException>(() => IndexSelection.Resolve(other, Amd64V3, _ => bytes, "t")).Message);
    }

    [Fact]
    public void Nesting_deeper_than_the_limit_is_refused()
    {
        var d = new Descriptor { MediaType = MediaTypes.ImageIndex, Digest = Digest.Compute("loop"u8), Size = 4 };
        var self = OciJson.Serialize(new ImageIndex { Manifests = [d] });
        var ex = Assert.Throws<ImageException>(() => IndexSelection.Resolve(d, Amd64V3, _ => self, "t"));
        Assert.Contains("nest more than", ex.Message);
    }

    [Fact]
    public void The_host_platform_is_linux_on_this_machines_architecture()
    {
        Assert.Equal("linux", Platform.Host.Os);
        Assert.Equal(System.Runtime.InteropServices.RuntimeInformation.OSArchitecture == System.Runtime.InteropServices.Architecture.X64 ? "amd64" : Platform.Host.Architecture,
            Platform.Host.Architecture);
        Assert.NotNull(Platform.Host.Fit(Platform.Host));
    }
}
