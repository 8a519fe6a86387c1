using Kiln.Oci;

namespace Kiln.Oci.Tests;

public sealed class DigestTests
{
    private const string Hex = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    [Fact]
    public void A_sha256_digest_parses_and_keeps_its_hex()
    {
        var d = Digest.Parse("sha256:" + Hex);
        Assert.Equal(Hex, d.Hex);
        Assert.Equal("sha256:" + Hex, d.ToString());
        Assert.Equal(Hex[..12], d.Short);
    }

    [Fact]
    public void Compute_hashes_the_bytes()
    {
        Assert.Equal("sha256:" + Hex, Digest.Compute("hello"u8).Value);
    }

    [Theory]
    [InlineData("sha256:../../x")]
    [InlineData("sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b982")]
    [InlineData("sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b98240")]
    [InlineData("sha256:2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824")]
    [InlineData("sha512:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")]
    [InlineData("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")]
    [InlineData("")]
    [InlineData("sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b98/4")]
    public void Malformed_digests_are_refused_before_any_path_is_built(string text)
    {
        Assert.False(Digest.TryParse(text, out _));
        Assert.Throws<FormatException>(() => Digest.Parse(text));
    }
}
