using Kiln.Oci.Registry;

namespace Kiln.Oci.Tests.Registry;

public sealed class AuthChallengeTests
{
    [Fact]
    public void Reads_a_bearer_challenge_with_quoted_parameters()
    {
        var c = Assert.Single(AuthChallenge.Parse(
            "Bearer realm=\"https://auth.example/token\",service=\"registry.example\",scope=\"repository:team/web:pull,push\""));
        Assert.True(c.IsBearer);
        Assert.Equal("https://auth.example/token", c["realm"]);
        Assert.Equal("registry.example", c["SERVICE"]);
        Assert.Equal("repository:team/web:pull,push", c["scope"]);
        Assert.Null(c["error"]);
    }

    [Fact]
    public void Reads_several_challenges_and_escapes()
    {
        var list = AuthChallenge.Parse("Basic realm=\"a \\\"quoted\\\" realm\", Bearer realm=x, error=invalid_token");
        Assert.Equal(2, list.Count);
        Assert.True(list[0].IsBasic);
        Assert.Equal("a \"quoted\" realm", list[0]["realm"]);
        Assert.Equal("x", list[1]["realm"]);
        Assert.Equal("invalid_token", list[1]["error"]);
    }

    [Fact]
    public void An_empty_header_has_no_challenge() => Assert.Empty(AuthChallenge.Parse(""));
}
