using Kiln.Build.Definition;

namespace Kiln.Build.Tests.Definition;

public sealed class ChannelDefinitionTests : IDisposable
{
    private readonly TempContext _context = new();

    public void Dispose() => _context.Dispose();

    [Fact]
    public void Channels_load_in_file_order_with_their_phases_sorted()
    {
        _context.Yaml("""
            channels:
              staging: [boot, bake, boot]
              production:
                require: [vm, bake, boot]
                approve: true
              qa: {require: [bake], approve: false}
            images:
              a:
                from: scratch
            """);

        var channels = _context.Load().Channels;

        Assert.Equal(["staging", "production", "qa"], channels.Select(c => c.Name));
        Assert.Equal(["bake", "boot"], channels[0].Require);
        Assert.False(channels[0].Approve);
        Assert.Equal(["bake", "boot", "vm"], channels[1].Require);
        Assert.True(channels[1].Approve);
        Assert.False(channels[2].Approve);
        Assert.Equal(new SourceMark(_context.YamlPath, 3, 3), channels[1].Mark);
    }

    [Fact]
    public void A_file_without_channels_has_none()
    {
        _context.Yaml("images:\n  a:\n    from: scratch\n");
        Assert.Empty(_context.Load().Channels);
    }

    [Theory]
    [InlineData("channels: [staging]", 1, 11, "`channels` expects a map")]
    [InlineData("channels: {staging: [bake, boto]}", 1, 28, "unknown phase `boto` in channel `staging` (expected bake, boot, vm); did you mean `boot`?")]
    [InlineData("channels: {staging: []}", 1, 21, "requires no phase")]
    [InlineData("channels: {staging: bake}", 1, 21, "channel `staging` expects a list of phases")]
    [InlineData("channels: {staging: {require: [bake], aprove: true}}", 1, 39, "unknown key `aprove` in channel `staging`")]
    [InlineData("channels: {staging: {approve: true}}", 1, 21, "missing `require` in channel `staging`")]
    [InlineData("channels: {staging: {require: [bake], approve: yes}}", 1, 48, "`approve` expects true or false, found `yes`")]
    [InlineData("channels: {\"a:b\": [bake]}", 1, 12, "channel name `a:b` is not valid")]
    public void Bad_channels_are_reported_where_they_are(string line, int row, int column, string message)
    {
        var problems = _context.Problems($"""
            {line}
            images:
              a:
                from: scratch
            """);

        var all = string.Join(Environment.NewLine, problems);
        var match = problems.FirstOrDefault(p => p.Message.Contains(message, StringComparison.Ordinal));
        Assert.True(match is not null, $"no problem says \"{message}\"; got:{Environment.NewLine}{all}");
        Assert.Equal(new SourceMark(_context.YamlPath, row, column), match.Mark);
    }
}
