using Kiln.Build.Definition;

namespace Kiln.Build.Tests.Definition;

public sealed class CacheDefinitionTests : IDisposable
{
    private readonly TempContext _context = new();

    public void Dispose() => _context.Dispose();

    [Fact]
    public void Cache_loads_its_sources_in_order_and_its_target()
    {
        _context.Yaml("""
            cache:
              from: [localhost:5000/kiln/a, 127.0.0.1:5001/kiln/b]
              to: localhost:5000/kiln/a
            images:
              a:
                from: scratch
            """);

        var cache = _context.Load().Cache;

        Assert.NotNull(cache);
        Assert.Equal(["localhost:5000/kiln/a", "127.0.0.1:5001/kiln/b"], cache.From);
        Assert.Equal("localhost:5000/kiln/a", cache.To);
    }

    [Fact]
    public void A_file_without_cache_has_none()
    {
        _context.Yaml("images:\n  a:\n    from: scratch\n");
        Assert.Null(_context.Load().Cache);
    }

    [Theory]
    [InlineData("cache: {to: localhost:5000/kiln/a:latest}", 1, 13, "names an image")]
    [InlineData("cache: {from: [kiln/cache]}", 1, 16, "no registry host")]
    [InlineData("cache: {form: [localhost:5000/a]}", 1, 9, "unknown key `form` in `cache`")]
    [InlineData("cache: [localhost:5000/a]", 1, 8, "`cache` expects a map")]
    public void Bad_cache_entries_are_reported_where_they_are(string line, int row, int column, string message)
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
