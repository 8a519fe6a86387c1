using Kiln.Build.Definition;

namespace Kiln.Build.Tests.Definition;

public sealed class DefinitionLoaderTests : IDisposable
{
    private const string Example = """
        images:
          base:
            bootstrap: debian/bookworm
            steps:
              - packages: [ca-certificates, curl]
          web:
            from: base
            steps:
              - packages: [nginx-light]
              - copy: site/
                to: /var/www/html/
                mode: "0644"
              - run: sed -i 's/listen 80/listen 8080/' /etc/nginx/sites-enabled/default
            config:
              cmd: [nginx, -g, "daemon off;"]
              expose: [8080]
        """;

    private readonly TempContext _context = new();

    public void Dispose() => _context.Dispose();

    [Fact]
    public void The_design_example_loads_into_the_expected_model()
    {
        _context.File("site/index.html", "Hello").Yaml(Example);

        var file = _context.Load();

        Assert.Equal(_context.YamlPath, file.Path);
        Assert.Equal(_context.Dir, file.ContextDir);
        Assert.Equal(["base", "web"], file.Images.Select(i => i.Name));

        var baseImage = file.Images[0];
        Assert.Equal(new SourceMark(_context.YamlPath, 2, 3), baseImage.Mark);
        var bootstrap = Assert.IsType<BootstrapSource>(baseImage.Source);
        Assert.Equal(("debian", "bookworm", "minbase", (string?)null), (bootstrap.Distro, bootstrap.Suite, bootstrap.Variant, bootstrap.Mirror));
        Assert.Empty(bootstrap.Packages);
        var packages = Assert.IsType<PackagesStep>(Assert.Single(baseImage.Steps));
        Assert.Equal(["ca-certificates", "curl"], packages.Packages);

        var web = file.Images[1];
        Assert.Equal("base", Assert.IsType<FromImageSource>(web.Source).ImageName);
        Assert.Equal(3, web.Steps.Count);
        Assert.Equal(["nginx-light"], Assert.IsType<PackagesStep>(web.Steps[0]).Packages);
        var copy = Assert.IsType<CopyStep>(web.Steps[1]);
        Assert.Equal(["site/"], copy.Sources);
        Assert.Equal("/var/www/html/", copy.To);
        Assert.Equal(0b110_100_100, copy.Mode);
        Assert.Null(copy.Uid);
        Assert.Equal(new SourceMark(_context.YamlPath, 10, 9), copy.Mark);
        var run = Assert.IsType<RunStep>(web.Steps[2]);
        Assert.Equal("sed -i 's/listen 80/listen 8080/' /etc/nginx/sites-enabled/default", run.Command);
        Assert.Equal(StepNetwork.Host, run.Network);
        Assert.Equal(["nginx", "-g", "daemon off;"], web.Config.Cmd);
        Assert.Equal(["8080/tcp"], web.Config.Expose);
        Assert.Null(web.Config.Entrypoint);
    }

    [Fact]
    public void A_directory_holding_kiln_yml_loads_too()
    {
        _context.File("kiln.yml", "images: {a: {from: scratch}}");

        var file = DefinitionLoader.Load(_context.Dir);

        Assert.IsType<ScratchSource>(Assert.Single(file.Images).Source);
    }

    [Fact]
    public void A_directory_without_kiln_yaml_is_a_file_not_found()
    {
        Assert.Throws<FileNotFoundException>(() => DefinitionLoader.Load(_context.Dir));
    }

    [Fact]
    public void Every_step_kind_and_option_is_normalised()
    {
        _context.File("app/bin/tool", "x").File("conf.ini", "y").Yaml("""
            images:
              app:
                bootstrap:
                  distro: debian
                  suite: trixie
                  variant: apt
                  packages: [curl]
                  mirror: http://mirror.invalid/debian
                steps:
                  - packages: "libc6=2.36-9"
                  - run: make
                    network: none
                    cache: [/root/.cache//go/]
                  - copy: [./app//bin/../bin/, conf.ini]
                    to: /opt/app/
                    owner: "1000"
                    mode: "755"
                  - env: {B: 2, A: "one"}
                  - workdir: /srv/./app
                  - user: www-data
                config:
                  entrypoint: /usr/bin/tool --serve
                  env: {PATH: /usr/bin}
                  workdir: /srv
                  user: "1000:1000"
                  expose: ["53/udp", 80]
                  labels: {org.opencontainers.image.title: app}
                  stop-signal: SIGQUIT
            """);

        var image = Assert.Single(_context.Load().Images);

        var bootstrap = Assert.IsType<BootstrapSource>(image.Source);
        Assert.Equal(("trixie", "apt", "http://mirror.invalid/debian"), (bootstrap.Suite, bootstrap.Variant, bootstrap.Mirror));
        Assert.Equal(["curl"], bootstrap.Packages);
        Assert.Equal(["libc6=2.36-9"], Assert.IsType<PackagesStep>(image.Steps[0]).Packages);
        var run = Assert.IsType<RunStep>(image.Steps[1]);
        Assert.Equal((StepNetwork.None, "/root/.cache/go/"), (run.Network, Assert.Single(run.Cache)));
        var copy = Assert.IsType<CopyStep>(image.Steps[2]);
        Assert.Equal(["app/bin/", "conf.ini"], copy.Sources);
        Assert.Equal((1000, (int?)null, 0b111_101_101), (copy.Uid, copy.Gid, copy.Mode));
        Assert.Equal([KeyValuePair.Create("A", "one"), KeyValuePair.Create("B", "2")], Assert.IsType<EnvStep>(image.Steps[3]).Variables);
        Assert.Equal("/srv/app", Assert.IsType<WorkdirStep>(image.Steps[4]).Path);
        Assert.Equal("www-data", Assert.IsType<UserStep>(image.Steps[5]).User);
        Assert.Equal(["/bin/sh", "-c", "/usr/bin/tool --serve"], image.Config.Entrypoint);
        Assert.Equal(["53/udp", "80/tcp"], image.Config.Expose);
        Assert.Equal(("/srv", "1000:1000", "SIGQUIT"), (image.Config.Workdir, image.Config.User, image.Config.StopSignal));
        Assert.Equal("app", Assert.Single(image.Config.Labels!).Value);
    }

    [Fact]
    public void An_oci_layout_source_is_resolved_against_the_context()
    {
        _context.Yaml("""
            images:
              a: {from: "oci:layouts/base:v1"}
              b: {from: "oci:/abs/layout"}
            """);

        var file = _context.Load();

        var a = Assert.IsType<OciLayoutSource>(file.Images[0].Source);
        Assert.Equal((Path.Combine(_context.Dir, "layouts/base"), "v1"), (a.LayoutPath, a.Tag));
        var b = Assert.IsType<OciLayoutSource>(file.Images[1].Source);
        Assert.Equal(("/abs/layout", "latest"), (b.LayoutPath, b.Tag));
    }

    [Fact]
    public void An_oci_archive_source_is_resolved_against_the_context_with_an_optional_tag()
    {
        _context.Yaml("""
            images:
              a: {from: "oci-archive:archives/base.tar"}
              b: {from: "oci-archive:/abs/base.oci.tar:v1"}
            """);

        var file = _context.Load();

        var a = Assert.IsType<OciArchiveSource>(file.Images[0].Source);
        Assert.Equal((Path.Combine(_context.Dir, "archives/base.tar"), (string?)null), (a.ArchivePath, a.Tag));
        var b = Assert.IsType<OciArchiveSource>(file.Images[1].Source);
        Assert.Equal(("/abs/base.oci.tar", (string?)"v1"), (b.ArchivePath, b.Tag));
    }

    [Theory]
    [InlineData("oci-archive:", "`from: oci-archive:FILE[:TAG]` needs a FILE")]
    [InlineData("oci-archive:base.tar:-v1", "`-v1` is not a valid tag")]
    public void A_bad_oci_archive_source_is_reported(string from, string message)
    {
        var problems = _context.Problems($"""
            images:
              web:
                from: "{from}"
            """);

        AssertProblem(problems, 3, 11, message);
    }

    // ---- problems, each with its exact line and column ----

    [Fact]
    public void An_unknown_top_level_key_is_reported_where_it_is()
    {
        var problems = _context.Problems("""
            images:
              base: {from: scratch}
            imagez: {}
            """);

        AssertProblem(problems, 3, 1, "unknown key `imagez` at the top level");
    }

    [Fact]
    public void An_unknown_key_in_an_image_is_reported_where_it_is()
    {
        var problems = _context.Problems("""
            images:
              base:
                bootstrap: debian/bookworm
                stepz: []
            """);

        AssertProblem(problems, 4, 5, "unknown key `stepz` in image `base`");
    }

    [Fact]
    public void An_image_name_ending_in_rejected_is_refused()
    {
        var problems = _context.Problems("""
            images:
              web.rejected:
                from: scratch
            """);

        AssertProblem(problems, 2, 3, "image name `web.rejected` ends in `.rejected`");
    }

    [Fact]
    public void An_unknown_key_in_a_step_is_reported_where_it_is()
    {
        var problems = _context.Problems("""
            images:
              base:
                from: scratch
                steps:
                  - run: echo hi
                    netwrk: none
            """);

        AssertProblem(problems, 6, 9, "unknown key `netwrk` in a step");
    }

    [Fact]
    public void An_unknown_key_near_a_known_one_names_it()
    {
        var problems = _context.Problems("""
            imagez:
              base:
                from: scratch
                stesp:
                  - pakages: [curl]
            """);

        AssertProblem(problems, 1, 1, "unknown key `imagez` at the top level (expected images, cache, services, channels, release); did you mean `images`?");
        var typo = """
            images:
              base:
                from: scratch
                stesp: []
                steps:
                  - pakages: [curl]
                  - run: echo hi
                    shell: bash
            """;
        problems = _context.Problems(typo);
        AssertProblem(problems, 4, 5, "did you mean `steps`?");
        AssertProblem(problems, 6, 9, "unknown key `pakages` in a step (expected ");
        AssertProblem(problems, 6, 9, "); did you mean `packages`?");
        var far = Assert.Single(problems, p => p.Message.Contains("`shell`", StringComparison.Ordinal));
        Assert.DoesNotContain("did you mean", far.Message);
    }

    [Fact]
    public void A_list_where_a_string_is_expected_is_a_wrong_type()
    {
        var problems = _context.Problems("""
            images:
              base:
                from: scratch
                steps:
                  - run: [echo, hi]
            """);

        AssertProblem(problems, 5, 14, "`run` expects a shell command line, found a list");
    }

    [Fact]
    public void An_option_of_another_step_kind_is_reported()
    {
        var problems = _context.Problems("""
            images:
              base:
                from: scratch
                steps:
                  - run: echo hi
                    mode: "0644"
            """);

        AssertProblem(problems, 6, 9, "`mode` applies only to copy");
    }

    [Fact]
    public void A_step_with_two_kinds_is_reported()
    {
        var problems = _context.Problems("""
            images:
              base:
                from: scratch
                steps:
                  - run: echo hi
                    user: root
            """);

        AssertProblem(problems, 6, 9, "exactly one of");
    }

    [Fact]
    public void Both_bootstrap_and_from_is_reported_at_the_second()
    {
        var problems = _context.Problems("""
            images:
              base:
                bootstrap: debian/bookworm
                from: scratch
            """);

        AssertProblem(problems, 4, 5, "both `bootstrap` and `from`");
    }

    [Fact]
    public void Neither_bootstrap_nor_from_is_reported_at_the_image()
    {
        var problems = _context.Problems("""
            images:
              base:
                steps: []
            """);

        AssertProblem(problems, 3, 5, "image `base` needs `bootstrap` or `from`");
    }

    [Fact]
    public void A_cycle_of_from_is_reported_with_its_path()
    {
        var problems = _context.Problems("""
            images:
              web:
                from: base
              base:
                from: web
            """);

        AssertProblem(problems, 3, 11, "web -> base -> web");
    }

    [Fact]
    public void An_image_built_from_itself_is_a_cycle()
    {
        var problems = _context.Problems("""
            images:
              loop: {from: loop}
            """);

        AssertProblem(problems, 2, 16, "loop -> loop");
    }

    [Fact]
    public void From_an_image_that_does_not_exist_is_reported()
    {
        var problems = _context.Problems("""
            images:
              web:
                from: bsae
            """);

        AssertProblem(problems, 3, 11, "no image named `bsae` in this file");
    }

    [Theory]
    [InlineData("registry.example.com/team/app:1")]
    [InlineData("localhost:5000/app")]
    [InlineData("127.0.0.1:5000/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")]
    public void A_registry_reference_with_a_host_loads_as_written(string from)
    {
        _context.Yaml($"""
            images:
              web:
                from: "{from}"
            """);

        var file = _context.Load();

        Assert.Equal(from, Assert.IsType<RegistrySource>(file.Images[0].Source).Reference);
    }

    [Theory]
    [InlineData("app@sha256:0123", "bad digest")]
    [InlineData("app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "no registry host")]
    [InlineData("localhost:5000/Team/app", "not a valid repository name")]
    [InlineData("registry.example.com/app:-bad", "not a valid tag")]
    public void A_registry_reference_the_client_refuses_is_reported_at_from(string from, string message)
    {
        var problems = _context.Problems($"""
            images:
              web:
                from: "{from}"
            """);

        AssertProblem(problems, 3, 11, message);
    }

    [Fact]
    public void A_missing_copy_source_is_reported_at_the_source()
    {
        var problems = _context.Problems("""
            images:
              web:
                from: scratch
                steps:
                  - copy: site/
                    to: /srv/
            """);

        AssertProblem(problems, 5, 15, "copy source `site/` does not exist");
    }

    [Theory]
    [InlineData("../x", "leaves the build context")]
    [InlineData("a/../../x", "leaves the build context")]
    [InlineData("/etc/passwd", "absolute path")]
    public void A_copy_source_outside_the_context_is_refused(string source, string message)
    {
        var problems = _context.Problems($"""
            images:
              web:
                from: scratch
                steps:
                  - copy: [ok, "{source}"]
                    to: /srv/
            """);

        _context.File("ok", "");
        AssertProblem(problems, 5, 20, message);
    }

    [Fact]
    public void A_copy_source_that_is_a_symlink_to_outside_is_refused()
    {
        using var outside = new TempContext();
        outside.File("secret", "s");
        File.CreateSymbolicLink(Path.Combine(_context.Dir, "link"), outside.Dir);

        var problems = _context.Problems("""
            images:
              web:
                from: scratch
                steps:
                  - copy: link/secret
                    to: /srv/
            """);

        AssertProblem(problems, 5, 15, "outside the build context");
    }

    [Fact]
    public void A_copy_source_that_is_a_symlink_inside_the_context_is_fine()
    {
        _context.File("real/a", "a");
        File.CreateSymbolicLink(Path.Combine(_context.Dir, "alias"), "real");
        _context.Yaml("""
            images:
              web:
                from: scratch
                steps:
                  - copy: alias/a
                    to: /srv/
            """);

        Assert.Equal(["alias/a"], Assert.IsType<CopyStep>(Assert.Single(_context.Load().Images[0].Steps)).Sources);
    }

    [Fact]
    public void A_bad_mode_is_reported()
    {
        _context.File("a", "");
        var problems = _context.Problems("""
            images:
              web:
                from: scratch
                steps:
                  - copy: a
                    to: /srv/
                    mode: "0999"
            """);

        AssertProblem(problems, 7, 15, "`mode` expects an octal string");
    }

    [Theory]
    [InlineData("70000")]
    [InlineData("0")]
    [InlineData("\"80/sctp\"")]
    public void A_bad_port_is_reported(string port)
    {
        var problems = _context.Problems($"""
            images:
              web:
                from: scratch
                config:
                  expose: [80, {port}]
            """);

        AssertProblem(problems, 5, 20, "is not a port");
    }

    [Fact]
    public void A_duplicate_key_is_reported_at_the_second_occurrence()
    {
        var problems = _context.Problems("""
            images:
              web:
                from: scratch
                from: scratch
            """);

        AssertProblem(problems, 4, 5, "duplicate key `from`");
    }

    [Fact]
    public void A_yaml_syntax_error_carries_yamldotnets_position()
    {
        var problems = _context.Problems("""
            images:
              web: {from: scratch
            """);

        var problem = Assert.Single(problems);
        Assert.StartsWith("YAML syntax error", problem.Message);
        Assert.Equal(_context.YamlPath, problem.Mark.File);
        Assert.True(problem.Mark.Line >= 2, problem.ToString());
    }

    [Fact]
    public void Every_problem_is_collected_into_one_exception_in_file_order()
    {
        var problems = _context.Problems("""
            images:
              web:
                from: nothere
                steps:
                  - packages: [Bad_Name]
                  - copy: missing
                config:
                  expose: [99999]
                  colour: blue
              BAD:
                bootstrap: fedora/40
            """);

        Assert.Equal(
            [(3, 11), (5, 20), (6, 9), (6, 15), (8, 16), (9, 7), (10, 3), (11, 16), (11, 16)],
            problems.Select(p => (p.Mark.Line, p.Mark.Column)));
        Assert.Contains(problems, p => p.Message.Contains("needs `to:`"));
        Assert.Contains(problems, p => p.Message.Contains("distro `fedora` is not supported yet"));
    }

    [Fact]
    public void The_exception_message_lists_every_problem_with_file_line_and_column()
    {
        _context.Yaml("images: {a: {}, b: {}}");

        var e = Assert.Throws<DefinitionException>(() => _context.Load());

        Assert.Equal(2, e.Problems.Count);
        Assert.Contains($"{_context.YamlPath}:1:13: image `a` needs", e.Message);
    }

    [Fact]
    public void Test_takes_a_spec_file_of_the_context_or_an_inline_map_and_boot_defaults_to_process()
    {
        _context.File("tests/web.yaml", "file: {/a: {}}\n").Yaml("""
            images:
              a:
                from: scratch
                test: tests/web.yaml
              b:
                from: scratch
                boot: systemd
                test:
                  file: {/b: {}}
            """);

        var file = _context.Load();

        Assert.Equal(Path.Combine(_context.Dir, "tests", "web.yaml"), file.Images[0].Test!.File);
        Assert.Equal(BootMode.Process, file.Images[0].Boot);
        Assert.Null(file.Images[1].Test!.File);
        Assert.Equal(new SourceMark(_context.YamlPath, 9, 7), file.Images[1].Test!.Mark);
        Assert.Equal(BootMode.Systemd, file.Images[1].Boot);
    }

    [Theory]
    [InlineData("test: missing.yaml", 4, 11, "`test: missing.yaml` does not exist in the build context")]
    [InlineData("test: ../outside.yaml", 4, 11, "`test: ../outside.yaml` leaves the build context")]
    [InlineData("test: /etc/passwd", 4, 11, "`test: /etc/passwd` is an absolute path")]
    [InlineData("test: tests", 4, 11, "`test: tests` is a directory")]
    [InlineData("test: [a]", 4, 11, "`test` expects a spec file (relative to the build context) or a map of checks, found a list")]
    [InlineData("boot: vm", 4, 11, "`boot` must be process or systemd, found `vm`")]
    [InlineData("boot: [systemd]", 4, 11, "`boot` expects process or systemd, found a list")]
    public void A_bad_test_or_boot_is_reported_where_it_is(string line, int l, int c, string message)
    {
        _context.File("tests/web.yaml", "{}\n");
        var problems = _context.Problems($"""
            images:
              a:
                from: scratch
                {line}
            """);

        AssertProblem(problems, l, c, message);
    }

    private void AssertProblem(IReadOnlyList<DefinitionProblem> problems, int line, int column, string message)
    {
        var all = string.Join(Environment.NewLine, problems);
        var match = problems.FirstOrDefault(p => p.Message.Contains(message, StringComparison.Ordinal));
        Assert.True(match is not null, $"no problem says \"{message}\"; got:{Environment.NewLine}{all}");
        Assert.Equal(new SourceMark(_context.YamlPath, line, column), match.Mark);
    }
}
