using System.IO.Compression;
using System.Formats.Tar;
using System.Text;
using Kiln.Oci.Archives;
using Kiln.Oci.Image;
using Kiln.Oci.Tests.Image;

namespace Kiln.Oci.Tests.Archives;

public sealed class DockerArchiveReaderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kiln-docker-archive-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static byte[] Layer(string name, string content)
    {
        var tar = new MemoryStream();
        using (var w = new TarWriter(tar, TarEntryFormat.Pax, leaveOpen: true))
        {
            w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(Encoding.UTF8.GetBytes(content)) });
        }
        return tar.ToArray();
    }

    private static byte[] Gzip(byte[] bytes)
    {
        var gz = new MemoryStream();
        using (var z = new GZipStream(gz, CompressionLevel.Fastest, leaveOpen: true))
        {
            z.Write(bytes);
        }
        return gz.ToArray();
    }

    /// <summary>Two images sharing their first layer (the second's a symbolic link), the second's top layer gzip
    /// compressed as some savers leave it.</summary>
    private (string Path, byte[] Base, byte[] One, byte[] Two) TwoImages()
    {
        byte[] base_ = Layer("base", "base"), one = Layer("one", "1"), two = Layer("two", "2");
        var path = Path.Combine(_dir, "saved.tar");
        DockerSaveArchive.Write(path,
            new DockerSaveArchive.Entry(["web:1", "localhost/web:latest"], DockerSaveArchive.Config(base_, one), [base_, one]),
            new DockerSaveArchive.Entry(["web:2"], DockerSaveArchive.Config(base_, two), [base_, Gzip(two)]));
        return (path, base_, one, two);
    }

    [Fact]
    public async Task An_image_without_an_oci_index_is_selected_by_repo_tag_and_copies_with_every_digest_checked()
    {
        var (path, base_, _, two) = TwoImages();
        using var source = ArchiveImageSource.OpenDocker(path);
        var manifest = await source.ResolveAsync("web:2");
        Assert.Equal(MediaTypes.DockerManifest, manifest.MediaType);
        var image = await ImageReader.ReadManifestAsync(source, manifest);
        Assert.Equal([MediaTypes.DockerLayerTar, MediaTypes.DockerLayerGzip], image.Layers.Select(l => l.Descriptor.MediaType));
        Assert.Equal("sha256:" + DockerSaveArchive.Hex(base_), image.Layers[0].Descriptor.Digest.Value);
        Assert.Equal("sha256:" + DockerSaveArchive.Hex(Gzip(two)), image.Layers[1].Descriptor.Digest.Value);
        Assert.Equal("sha256:" + DockerSaveArchive.Hex(DockerSaveArchive.Config(base_, two)), image.Manifest.Config.Digest.Value);

        var sink = new MemorySink();
        var summary = await ImageCopier.CopyAsync(source, manifest, sink);
        Assert.Equal(3, summary.BlobsCopied);
        Assert.Equal(base_, sink.Blobs[image.Layers[0].Descriptor.Digest]); // read through the symbolic link

        // The same image, asked for again, is the same manifest; `web` means web:latest, as docker load takes it.
        Assert.Equal(manifest, await source.ResolveAsync("web:2"));
        var one = await source.ResolveAsync("localhost/web");
        Assert.NotEqual(manifest.Digest, one.Digest);
    }

    [Fact]
    public void Several_images_and_no_tag_or_an_unknown_one_is_refused_naming_the_tags_there()
    {
        var (path, _, _, _) = TwoImages();
        using var reader = DockerArchiveReader.Open(path);
        var none = Assert.Throws<ArchiveException>(() => reader.FindImage(null));
        Assert.Contains("holds 2 images", none.Message);
        Assert.Contains("web:1, localhost/web:latest, web:2", none.Message);
        var unknown = Assert.Throws<ArchiveException>(() => reader.FindImage("web:3"));
        Assert.Contains("no image tagged 'web:3'", unknown.Message);
        Assert.Contains("web:1, localhost/web:latest, web:2", unknown.Message);
    }

    [Fact]
    public async Task A_layer_that_is_not_what_its_config_says_fails_the_copy()
    {
        byte[] real = Layer("a", "a"), claimed = Layer("b", "b");
        var path = Path.Combine(_dir, "lying.tar");
        DockerSaveArchive.Write(path, new DockerSaveArchive.Entry(["lie:1"], DockerSaveArchive.Config(claimed), [real]));
        using var source = ArchiveImageSource.OpenDocker(path);
        var manifest = await source.ResolveAsync(null);
        await Assert.ThrowsAsync<ImageException>(() => ImageCopier.CopyAsync(source, manifest, new MemorySink()));
    }

    [Fact]
    public async Task A_docker_archive_with_an_oci_layout_beside_it_keeps_the_layouts_manifest()
    {
        var image = new TestImage(("a", "a"));
        var path = Path.Combine(_dir, "kiln.tar");
        await using (var file = File.Create(path))
        {
            await DockerArchiveWriter.WriteAsync(file, image, image.Manifest, "web:1", new ArchiveOptions());
        }
        using var source = ArchiveImageSource.OpenDocker(path);
        Assert.Equal(image.Manifest.Digest, (await source.ResolveAsync("web:1")).Digest);
    }

    [Fact]
    public void An_oci_archive_reader_given_a_docker_save_archive_says_to_use_docker_archive()
    {
        var (path, _, _, _) = TwoImages();
        var e = Assert.Throws<ArchiveException>(() => OciArchiveReader.Open(path));
        Assert.Contains("docker-archive:" + path, e.Message);
    }
}
