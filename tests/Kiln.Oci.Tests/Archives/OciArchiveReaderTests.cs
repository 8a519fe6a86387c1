using System.Formats.Tar;
using System.Text;
using Kiln.Oci.Archives;

namespace Kiln.Oci.Tests.Archives;

public sealed class OciArchiveReaderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kiln-oci-archive-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Save(byte[] bytes, string name = "image.tar")
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public async Task Reads_back_what_the_writer_wrote_blob_by_blob()
    {
        var image = new TestImage(("a", "a"), ("b", "bb"));
        using var reader = OciArchiveReader.Open(Save(await image.OciArchiveAsync("web")));
        Assert.Equal(image.Manifest, reader.FindManifest("web") with { Annotations = null });
        Assert.Equal(image.Manifest.Digest, reader.FindManifest(null).Digest);
        foreach (var desc in image.Layers.Append(image.Config).Append(image.Manifest))
        {
            using var s = reader.OpenBlob(desc);
            var ms = new MemoryStream();
            await s.CopyToAsync(ms);
            Assert.Equal(image.Blobs[desc.Digest], ms.ToArray());
        }
    }

    [Fact]
    public async Task Reads_an_archive_written_by_another_tar_writer_with_dot_slash_names_and_pax_headers()
    {
        var image = new TestImage(("a", "a"));
        var tar = new MemoryStream();
        using (var w = new TarWriter(tar, TarEntryFormat.Pax, leaveOpen: true))
        {
            void Add(string name, byte[] data) => w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(data) });
            w.WriteEntry(new PaxTarEntry(TarEntryType.Directory, "./"));
            Add("./oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}"u8.ToArray());
            foreach (var (d, bytes) in image.Blobs)
            {
                Add("./blobs/sha256/" + d.Hex, bytes);
            }
            Add("./index.json", OciJson.Serialize(new ImageIndex { Manifests = [image.Manifest] }));
        }
        using var reader = OciArchiveReader.Open(Save(tar.ToArray()));
        var found = reader.FindManifest(null);
        Assert.Equal(image.Manifest.Digest, found.Digest);
        using var s = reader.OpenBlob(image.Config);
        Assert.Equal(image.Blobs[image.Config.Digest], new BinaryReader(s).ReadBytes((int)image.Config.Size));
    }

    [Fact]
    public void A_missing_file_is_reported_by_name()
    {
        var path = Path.Combine(_dir, "nope.tar");
        var ex = Assert.Throws<ArchiveException>(() => OciArchiveReader.Open(path));
        Assert.Contains(path, ex.Message);
        Assert.Contains("no such file", ex.Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData("this is not a tar file at all, just some words")]
    public void A_file_that_is_not_a_tar_is_reported_by_name(string content)
    {
        var path = Save(Encoding.UTF8.GetBytes(content.PadRight(content.Length == 0 ? 0 : 2048, 'x')));
        var ex = Assert.Throws<ArchiveException>(() => OciArchiveReader.Open(path));
        Assert.Contains(path, ex.Message);
        Assert.Contains("not a tar", ex.Message);
    }

    [Fact]
    public void A_tar_without_a_layout_is_not_an_oci_archive()
    {
        var tar = new MemoryStream();
        using (var w = new TarWriter(tar, TarEntryFormat.Ustar, leaveOpen: true))
        {
            w.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, "hello.txt") { DataStream = new MemoryStream("hi"u8.ToArray()) });
        }
        var path = Save(tar.ToArray());
        var ex = Assert.Throws<ArchiveException>(() => OciArchiveReader.Open(path));
        Assert.Contains("not an oci-archive", ex.Message);
    }

    [Fact]
    public async Task A_truncated_archive_is_refused()
    {
        var bytes = await new TestImage(("a", "a")).OciArchiveAsync();
        var path = Save(bytes[..(bytes.Length - 1024 - 512 - 100)]);
        var ex = Assert.Throws<ArchiveException>(() => OciArchiveReader.Open(path));
        Assert.Contains("truncated", ex.Message);
    }

    [Fact]
    public void Several_images_and_no_tag_is_an_error_that_lists_the_tags()
    {
        var one = new TestImage(("a", "a"));
        var two = new TestImage(("b", "b"));
        var tar = new MemoryStream();
        using (var w = new TarWriter(tar, TarEntryFormat.Ustar, leaveOpen: true))
        {
            void Add(string name, byte[] data) => w.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(data) });
            Add("oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}"u8.ToArray());
            Add("index.json", OciJson.Serialize(new ImageIndex
            {
                Manifests =
                [
                    one.Manifest with { Annotations = new Dictionary<string, string> { [Annotations.RefName] = "one" } },
                    two.Manifest with { Annotations = new Dictionary<string, string> { [Annotations.RefName] = "two" } },
                ],
            }));
            foreach (var (d, bytes) in one.Blobs.Concat(two.Blobs))
            {
                Add("blobs/sha256/" + d.Hex, bytes);
            }
        }
        var path = Save(tar.ToArray());
        using var reader = OciArchiveReader.Open(path);
        var ex = Assert.Throws<ArchiveException>(() => reader.FindManifest(null));
        Assert.Contains(path, ex.Message);
        Assert.Contains("one, two", ex.Message);
        Assert.Equal(two.Manifest.Digest, reader.FindManifest("two").Digest);
        Assert.Contains("no image tagged 'three'", Assert.Throws<ArchiveException>(() => reader.FindManifest("three")).Message);
    }

    [Fact]
    public async Task A_blob_whose_size_differs_from_its_descriptor_is_refused()
    {
        var image = new TestImage(("a", "a"));
        using var reader = OciArchiveReader.Open(Save(await image.OciArchiveAsync()));
        var ex = Assert.Throws<ArchiveException>(() => reader.OpenBlob(image.Config with { Size = image.Config.Size + 1 }));
        Assert.Contains("descriptor says", ex.Message);
        Assert.Throws<ArchiveException>(() => reader.OpenBlob(image.Config with { Digest = Digest.Compute("other"u8) }));
    }

    [Fact]
    public void A_tag_that_names_an_index_gives_the_manifest_for_the_platform()
    {
        var amd = new TestImage(("a", "amd64"));
        var arm = new TestImage(("a", "arm64"));
        var list = OciJson.Serialize(new ImageIndex
        {
            MediaType = MediaTypes.DockerManifestList,
            Manifests =
            [
                arm.Manifest with { Platform = new Platform { Os = "linux", Architecture = "arm64" } },
                amd.Manifest with { Platform = new Platform { Os = "linux", Architecture = "amd64" } },
            ],
        });
        var listDesc = new Descriptor
        {
            MediaType = MediaTypes.DockerManifestList,
            Digest = Digest.Compute(list),
            Size = list.Length,
            Annotations = new Dictionary<string, string> { [Annotations.RefName] = "multi" },
        };
        var tar = new MemoryStream();
        using (var w = new TarWriter(tar, TarEntryFormat.Ustar, leaveOpen: true))
        {
            void Add(string name, byte[] data) => w.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(data) });
            Add("oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}"u8.ToArray());
            Add("index.json", OciJson.Serialize(new ImageIndex { Manifests = [listDesc] }));
            Add("blobs/sha256/" + listDesc.Digest.Hex, list);
            foreach (var (d, bytes) in amd.Blobs.Concat(arm.Blobs))
            {
                Add("blobs/sha256/" + d.Hex, bytes);
            }
        }
        using var reader = OciArchiveReader.Open(Save(tar.ToArray()));
        var amd64 = new Platform { Os = "linux", Architecture = "amd64" };
        var arm64 = new Platform { Os = "linux", Architecture = "arm64", Variant = "v8" };
        Assert.Equal(amd.Manifest.Digest, reader.FindManifest("multi", amd64).Digest);
        Assert.Equal(arm.Manifest.Digest, reader.FindManifest(null, arm64).Digest);
        var ex = Assert.Throws<Kiln.Oci.Image.ImageException>(() => reader.FindManifest("multi", new Platform { Os = "linux", Architecture = "riscv64" }));
        Assert.Contains("linux/arm64, linux/amd64", ex.Message);
    }
}
