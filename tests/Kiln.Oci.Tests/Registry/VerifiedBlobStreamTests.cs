using Kiln.Oci.Registry;

namespace Kiln.Oci.Tests.Registry;

public sealed class VerifiedBlobStreamTests
{
    private static Descriptor Of(byte[] content) => new() { MediaType = MediaTypes.LayerTar, Digest = Digest.Compute(content), Size = content.Length };

    private static byte[] ReadAll(Stream s)
    {
        using var m = new MemoryStream();
        s.CopyTo(m);
        return m.ToArray();
    }

    [Fact]
    public void Passes_content_that_matches_and_reports_progress()
    {
        var content = new byte[100_000];
        new Random(1).NextBytes(content);
        long seen = 0;
        using var s = VerifiedBlobStream.Over(new MemoryStream(content), Of(content), "test", new SyncProgress(n => seen += n));
        Assert.Equal(content, ReadAll(s));
        Assert.Equal(content.Length, seen);
    }

    [Fact]
    public void Refuses_other_content_of_the_same_size()
    {
        var d = Of("hello"u8.ToArray());
        using var s = VerifiedBlobStream.Over(new MemoryStream("jello"u8.ToArray()), d, "test");
        var e = Assert.Throws<RegistryException>(() => ReadAll(s));
        Assert.Equal(RegistryErrorKind.Refused, e.Kind);
        Assert.Contains(d.Digest.Value, e.Message);
    }

    [Fact]
    public void Refuses_a_longer_blob_before_handing_out_its_extra_bytes()
    {
        var d = Of("hello"u8.ToArray());
        using var s = VerifiedBlobStream.Over(new MemoryStream("hello world"u8.ToArray()), d, "test");
        var buffer = new byte[64];
        var e = Assert.Throws<RegistryException>(() => s.Read(buffer, 0, buffer.Length));
        Assert.Contains("more than 5 bytes", e.Message);
    }

    [Fact]
    public void Refuses_a_shorter_blob()
    {
        var d = Of("hello"u8.ToArray());
        using var s = VerifiedBlobStream.Over(new MemoryStream("hell"u8.ToArray()), d, "test");
        var e = Assert.Throws<RegistryException>(() => ReadAll(s));
        Assert.Contains("sent 4 bytes", e.Message);
    }

    private sealed class SyncProgress(Action<long> report) : IProgress<long>
    {
        public void Report(long value) => report(value);
    }
}
