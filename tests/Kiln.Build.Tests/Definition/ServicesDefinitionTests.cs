using Kiln.Build.Definition;

namespace Kiln.Build.Tests.Definition;

public sealed class ServicesDefinitionTests : IDisposable
{
    private readonly TempContext _context = new();

    public void Dispose() => _context.Dispose();

    [Fact]
    public void A_service_loads_with_its_image_package_config_and_spec()
    {
        _context.File("hello/DEBIAN/control", "Package: hello\n").File("t.yaml", "port: {\"tcp:80\": {}}\n").File("app.deb", "");
        _context.Yaml("""
            images:
              runner: {from: scratch, boot: systemd}
            services:
              hello:
                image: runner
                package: hello/
                config: {PORT: "8081", A: "x y"}
                test: t.yaml
              app: {image: runner, package: app.deb}
            """);

        var services = _context.Load().Services;

        Assert.Equal(["hello", "app"], services.Select(s => s.Name));
        Assert.Equal("runner", services[0].Image);
        Assert.Equal(Path.Combine(_context.Dir, "hello"), services[0].Package);
        Assert.True(services[0].PackageIsFolder);
        Assert.Equal(["A", "PORT"], services[0].Config.Select(c => c.Key));
        Assert.Equal(Path.Combine(_context.Dir, "t.yaml"), services[0].Test!.File);
        Assert.False(services[1].PackageIsFolder);
        Assert.Equal(new SourceMark(_context.YamlPath, 4, 3), services[0].Mark);
    }

    [Fact]
    public void Every_problem_of_a_service_is_reported_with_its_position()
    {
        _context.File("empty/readme", "");
        var problems = _context.Problems("""
            images:
              runner: {from: scratch}
            services:
              a: {image: nosuch, package: empty/, tset: x}
              b: {package: missing/}
              c: {image: runner, package: notes.txt, config: {"bad-name": "1"}}
            """).Select(p => p.ToString()).ToList();

        Assert.Contains(problems, p => p.Contains("service `a`: no image named `nosuch` in this file", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("`package: empty/` is a folder without DEBIAN/control", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("unknown key `tset` in service `a`", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains(":5:6: missing `image` in service `b`", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("`package: missing/`", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("`package: notes.txt`", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("`bad-name` is not a valid environment variable name", StringComparison.Ordinal));
    }
}
