using Kiln.Oci.Registry;

namespace Kiln.Oci.Tests.Registry;

public sealed class ImageReferenceTests
{
    private const string Hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    [Theory]
    [InlineData("registry.example/web", "registry.example", "web", null, "latest")]
    [InlineData("registry.example:5000/team/web:v1.2", "registry.example:5000", "team/web", "v1.2", "v1.2")]
    [InlineData("localhost/web:dev", "localhost", "web", "dev", "dev")]
    [InlineData("127.0.0.1:5000/a/b/c", "127.0.0.1:5000", "a/b/c", null, "latest")]
    [InlineData("host:5000/my_app-x.y__z", "host:5000", "my_app-x.y__z", null, "latest")]
    public void Parses_host_repository_and_tag(string text, string registry, string repository, string? tag, string reference)
    {
        var r = ImageReference.Parse(text);
        Assert.Equal(registry, r.Registry);
        Assert.Equal(repository, r.Repository);
        Assert.Equal(tag, r.Tag);
        Assert.Equal(reference, r.Reference);
        Assert.Equal(text, r.ToString());
    }

    [Fact]
    public void Parses_a_digest_with_or_without_a_tag()
    {
        var r = ImageReference.Parse($"registry.example:5000/web:v1@sha256:{Hex}");
        Assert.Equal("v1", r.Tag);
        Assert.Equal("sha256:" + Hex, r.Digest!.Value.Value);
        Assert.Equal("sha256:" + Hex, r.Reference);
        Assert.Null(ImageReference.Parse($"registry.example/web@sha256:{Hex}").Tag);
    }

    [Theory]
    [InlineData("web")]
    [InlineData("web:v1")]
    [InlineData("library/web:v1")]
    [InlineData("team/web")]
    public void Refuses_a_reference_without_a_registry_host_and_names_it(string text)
    {
        var e = Assert.Throws<RegistryException>(() => ImageReference.Parse(text));
        Assert.Equal(RegistryErrorKind.BadInput, e.Kind);
        Assert.Contains($"'{text}'", e.Message);
        Assert.Contains("no registry host", e.Message);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("registry.example/Web", "repository")]
    [InlineData("registry.example/web:-bad", "tag")]
    [InlineData("registry.example/web@sha256:abc", "digest")]
    [InlineData("registry.example/a//b", "repository")]
    [InlineData("registry.example:99999/web", "host")]
    [InlineData("registry.example/web.", "repository")]
    public void Refuses_malformed_parts_naming_the_value(string text, string problem)
    {
        var e = Assert.Throws<RegistryException>(() => ImageReference.Parse(text));
        Assert.Contains(problem, e.Message);
    }
}
