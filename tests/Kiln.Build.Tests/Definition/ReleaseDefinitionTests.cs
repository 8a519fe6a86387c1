using System.Net;
using Kiln.Build.Definition;

namespace Kiln.Build.Tests.Definition;

public sealed class ReleaseDefinitionTests : IDisposable
{
    private readonly TempContext _context = new();

    public void Dispose() => _context.Dispose();

    private const string Image = "images:\n  web:\n    from: scratch\n";

    [Fact]
    public void Targets_load_with_their_strategy_canary_and_servers()
    {
        _context.Yaml(Image + """
            release:
              web-staging:
                image: web
                channel: staging
                instances: 2
                port: 8080
                listen: 127.0.0.1:9080
                strategy: canary
                canary: {steps: [10, 50], pause: 500ms, max-error-rate: 2.5%}
              web-fleet:
                image: web
                channel: production
                port: 8080
                listen: "[::1]:9081"
                servers: [10.0.0.5:8080, 10.0.0.6:8081]
            """);

        var targets = _context.Load().Release;

        Assert.Equal(["web-staging", "web-fleet"], targets.Select(t => t.Name));
        var staging = targets[0];
        Assert.Equal(("web", "staging", 2, 8080), (staging.Image, staging.Channel, staging.Instances, staging.Port));
        Assert.Equal(IPEndPoint.Parse("127.0.0.1:9080"), staging.Listen);
        Assert.Equal(ReleaseStrategy.Canary, staging.Strategy);
        Assert.Equal([10, 50, 100], staging.Canary.Steps);
        Assert.Equal(TimeSpan.FromMilliseconds(500), staging.Canary.Pause);
        Assert.Equal(0.025, staging.Canary.MaxErrorRate, 6);
        Assert.False(staging.IsFleet);
        var fleet = targets[1];
        Assert.Equal(ReleaseStrategy.BlueGreen, fleet.Strategy);
        Assert.True(fleet.IsFleet);
        Assert.Equal([IPEndPoint.Parse("10.0.0.5:8080"), IPEndPoint.Parse("10.0.0.6:8081")], fleet.Servers);
    }

    [Theory]
    [InlineData("    image: api\n", 6, 12, "no image named `api`")]
    [InlineData("    port: 70000\n", 6, 11, "`port` expects a port number")]
    [InlineData("    listen: localhost\n", 6, 13, "`listen` expects ADDRESS:PORT")]
    [InlineData("    strategy: blue-gren\n", 6, 15, "`strategy` expects blue-green or canary")]
    [InlineData("    instances: 0\n", 6, 16, "`instances` expects a number 1-64")]
    [InlineData("    canary: {steps: [10]}\n", 6, 13, "`strategy` is not canary")]
    [InlineData("    strategy: canary\n    canary: {steps: [50, 10]}\n", 7, 26, "canary steps must grow")]
    [InlineData("    strategy: canary\n    canary: {pause: soon}\n", 7, 21, "`pause` expects a duration")]
    [InlineData("    strategy: canary\n    canary: {max-error-rate: 150%}\n", 7, 30, "`max-error-rate` expects a percentage")]
    [InlineData("    servers: [10.0.0.5]\n", 6, 15, "a server expects ADDRESS:PORT")]
    [InlineData("    servers: [10.0.0.5:80]\n    instances: 2\n", 7, 16, "`instances` and `servers` both set")]
    [InlineData("    weight: 3\n", 6, 5, "unknown key `weight` in release target `t`")]
    public void Bad_targets_are_reported_where_they_are(string extra, int row, int column, string message)
    {
        // `extra` starts at line 6; the required keys it does not set follow it.
        var required = new[] { "image: web", "channel: staging", "port: 8080", "listen: 127.0.0.1:9080" }
            .Where(k => !extra.Contains(k.Split(':')[0] + ":", StringComparison.Ordinal));
        var problems = _context.Problems(Image + "release:\n  t:\n" + extra + string.Concat(required.Select(k => $"    {k}\n")));

        var all = string.Join(Environment.NewLine, problems);
        var match = problems.FirstOrDefault(p => p.Message.Contains(message, StringComparison.Ordinal));
        Assert.True(match is not null, $"no problem says \"{message}\"; got:{Environment.NewLine}{all}");
        Assert.Equal(new SourceMark(_context.YamlPath, row, column), match.Mark);
    }
}
