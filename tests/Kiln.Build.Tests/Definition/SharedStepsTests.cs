using Kiln.Build.Definition;

namespace Kiln.Build.Tests.Definition;

/// <summary>Steps and config written once and shared by several images through a YAML anchor and aliases, as
/// examples/web shares its site between web, web-systemd and server.</summary>
public sealed class SharedStepsTests : IDisposable
{
    private readonly TempContext _context = new();

    public void Dispose() => _context.Dispose();

    [Fact]
    public void Images_that_alias_an_anchored_step_list_and_config_get_the_same_steps_and_config()
    {
        _context.File("site/index.html", "hello");
        _context.Yaml("""
            images:
              os-a:
                from: scratch
              app-a:
                from: os-a
                steps: &app
                  - run: echo configure
                  - copy: site/
                    to: /srv/
                    mode: "0644"
                config: &app-config
                  expose: [8080]
              app-b:
                from: os-a
                steps: *app
                config: *app-config
            """);
        var file = _context.Load();

        var a = file.Images.Single(i => i.Name == "app-a");
        var b = file.Images.Single(i => i.Name == "app-b");
        Assert.Equal(2, b.Steps.Count);
        Assert.Equivalent(a.Steps, b.Steps, strict: true);
        Assert.Equal(["site/"], Assert.IsType<CopyStep>(b.Steps[1]).Sources);
        Assert.Equivalent(a.Config, b.Config, strict: true);
        Assert.Equal(["8080/tcp"], b.Config.Expose);
    }

    [Fact]
    public void A_problem_in_a_shared_step_list_is_reported_once_where_it_is_written()
    {
        var problems = _context.Problems("""
            images:
              a:
                from: scratch
                steps: &app
                  - copy: missing/
                    to: /srv/
              b:
                from: scratch
                steps: *app
              c:
                from: scratch
                steps: *app
            """);

        var problem = Assert.Single(problems);
        Assert.Equal(new SourceMark(_context.YamlPath, 5, 15), problem.Mark);
        Assert.Contains("copy source `missing/` does not exist", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_alias_of_no_anchor_is_reported_at_the_alias()
    {
        var problems = _context.Problems("""
            images:
              a:
                from: scratch
                steps: &app
                  - run: "true"
              b:
                from: scratch
                steps: *ap
            """);

        var problem = Assert.Single(problems);
        Assert.Equal(new SourceMark(_context.YamlPath, 8, 12), problem.Mark);
        Assert.Contains("unknown alias *ap", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_alias_used_before_its_anchor_is_reported_at_the_alias()
    {
        // YAML anchors name what was written above them: the image that shares must come after the one that names.
        var problems = _context.Problems("""
            images:
              b:
                from: scratch
                steps: *app
              a:
                from: scratch
                steps: &app
                  - run: "true"
            """);

        var problem = Assert.Single(problems);
        Assert.Equal(4, problem.Mark.Line);
        Assert.Contains("unknown alias *app", problem.Message, StringComparison.Ordinal);
    }
}
