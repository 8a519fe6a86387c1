using Kiln.Build.Definition;
using Kiln.Build.Tests.Definition;

namespace Kiln.Build.Tests.Minimize;

public sealed class MinimizeDefinitionTests : IDisposable
{
    private readonly TempContext _context = new();

    public void Dispose() => _context.Dispose();

    [Fact]
    public void Minimize_loads_profiles_sorted_from_tests_and_normalised_keep_paths()
    {
        _context.Yaml("""
            images:
              web:
                from: scratch
                test: {file: {/etc/hostname: {}}}
                minimize:
                  profiles: [man, docs]
                  from-tests: true
                  keep: [/etc/ssl//certs/, "/usr/share/zoneinfo/*"]
            """);

        var minimize = Assert.Single(_context.Load().Images).Minimize;

        Assert.NotNull(minimize);
        Assert.Equal(["docs", "man"], minimize.Profiles);
        Assert.True(minimize.FromTests);
        Assert.Equal(["/etc/ssl/certs", "/usr/share/zoneinfo/*"], minimize.Keep);
        Assert.Equal(new SourceMark(_context.YamlPath, 6, 7), minimize.Mark);
    }

    [Fact]
    public void An_image_without_minimize_is_kept_whole()
    {
        _context.Yaml("""
            images:
              a:
                from: scratch
            """);

        Assert.Null(Assert.Single(_context.Load().Images).Minimize);
    }

    [Theory]
    [InlineData("minimize: [docs]", 4, 15, "`minimize` expects a map")]
    [InlineData("minimize: {profiles: [doc]}", 4, 27, "unknown profile `doc` (expected docs, man, locales, apt-lists, caches, logs); did you mean `docs`?")]
    [InlineData("minimize: {profiles: [man, man]}", 4, 32, "profile `man` is listed twice")]
    [InlineData("minimize: {from-tests: yes}", 4, 28, "`from-tests` must be true or false")]
    [InlineData("minimize: {from-tests: true}", 4, 28, "has no `test:`")]
    [InlineData("minimize: {profiles: [man], keep: [etc/ssl]}", 4, 40, "`keep` expects absolute paths or globs without '..', found `etc/ssl`")]
    [InlineData("minimize: {keep: [/etc]}", 4, 15, "removes nothing")]
    [InlineData("minimize: {profile: [man]}", 4, 16, "unknown key `profile` in `minimize`")]
    public void Bad_minimize_is_reported_where_it_is(string line, int row, int column, string message)
    {
        var problems = _context.Problems($"""
            images:
              a:
                from: scratch
                {line}
            """);

        var all = string.Join(Environment.NewLine, problems);
        var match = problems.FirstOrDefault(p => p.Message.Contains(message, StringComparison.Ordinal));
        Assert.True(match is not null, $"no problem says \"{message}\"; got:{Environment.NewLine}{all}");
        Assert.Equal(new SourceMark(_context.YamlPath, row, column), match.Mark);
    }

    [Fact]
    public void An_image_name_ending_in_full_is_refused()
    {
        var problems = _context.Problems("""
            images:
              web.full:
                from: scratch
            """);

        Assert.Contains(problems, p => p.Message.Contains("ends in `.full`", StringComparison.Ordinal) && p.Mark.Line == 2);
    }
}
