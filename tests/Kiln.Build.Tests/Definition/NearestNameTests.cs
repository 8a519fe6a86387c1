using Kiln.Build.Definition;

namespace Kiln.Build.Tests.Definition;

public sealed class NearestNameTests
{
    private static readonly string[] StepKeys = ["packages", "run", "copy", "env", "workdir", "user", "to", "owner", "mode", "network", "cache", "secrets"];

    [Theory]
    [InlineData("pakages", "packages")]   // a letter left out
    [InlineData("packagess", "packages")] // one too many
    [InlineData("pakcages", "packages")]  // two letters swapped: one edit
    [InlineData("netwrk", "network")]
    [InlineData("Packages", "packages")]  // case only
    [InlineData("evn", "env")]
    [InlineData("rn", "run")]
    [InlineData("workdri", "workdir")]
    public void A_near_miss_names_the_key_it_most_likely_meant(string typed, string meant) =>
        Assert.Equal(meant, NearestName.Find(typed, StepKeys));

    [Theory]
    [InlineData("bootstrap")] // no key is near
    [InlineData("pkgs")]      // too far from packages
    [InlineData("ab")]        // two edits from "to", but too short for two
    [InlineData("shell")]
    public void A_name_near_nothing_names_nothing(string typed) =>
        Assert.Null(NearestName.Find(typed, StepKeys));

    [Fact]
    public void The_hint_is_a_sentence_or_nothing()
    {
        Assert.Equal("; did you mean `packages`?", NearestName.Hint("pakages", StepKeys));
        Assert.Equal("", NearestName.Hint("bootstrap", StepKeys));
    }
}
