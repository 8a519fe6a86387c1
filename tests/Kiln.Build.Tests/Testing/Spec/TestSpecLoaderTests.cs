using Kiln.Build.Definition;
using Kiln.Build.Testing.Spec;

namespace Kiln.Build.Tests.Testing.Spec;

public sealed class TestSpecLoaderTests
{
    private const string File = "/ctx/tests/web.yaml";

    private static TestSpec Parse(string yaml, BootMode boot = BootMode.Process) =>
        TestSpecLoader.Parse(File, new StringReader(yaml), boot);

    private static IReadOnlyList<DefinitionProblem> Problems(string yaml, BootMode boot = BootMode.Process) =>
        Assert.Throws<DefinitionException>(() => Parse(yaml, boot)).Problems;

    private static void AssertProblem(IReadOnlyList<DefinitionProblem> problems, int line, int column, string message)
    {
        var all = string.Join(Environment.NewLine, problems);
        var match = problems.FirstOrDefault(p => p.Message.Contains(message, StringComparison.Ordinal));
        Assert.True(match is not null, $"no problem says \"{message}\"; got:{Environment.NewLine}{all}");
        Assert.Equal(new SourceMark(File, line, column), match.Mark);
    }

    [Fact]
    public void Every_section_and_matcher_is_read_with_its_values()
    {
        var spec = Parse("""
            file:
              /var/www/html/index.html: {exists: true, type: file, mode: "0644", owner: root, group: 0, contains: [Hello, Kiln], sha256: ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789}
              /etc/alternatives/awk: {type: symlink, link-target: /usr/bin/mawk}
              /etc/gone: {exists: false}
            package:
              nginx-light: {installed: true, version: 1.22.1-9}
            user:
              www-data: {exists: true, uid: 33, gid: 33, home: /var/www, shell: /usr/sbin/nologin}
            group:
              www-data: {gid: 33}
            command:
              nginx -t: {exit-status: 0, stderr: [syntax is ok], stdout-matches: "^$", stderr-matches: "test is successful", timeout: 5}
              curl -s localhost:8080: {phase: boot, stdout: Hello}
            port:
              tcp:8080: {listening: true}
              udp:53: {listening: false}
            http:
              http://127.0.0.1:8080/: {status: 200, body: [Hello], headers: {Content-Type: text/html}, timeout: 2.5}
            service:
              nginx.service: {enabled: true, active: true}
            """, BootMode.Systemd);

        Assert.Equal(["file", "file", "file", "package", "user", "group", "command", "command", "port", "port", "http", "service"],
            spec.Checks.Select(c => c.Section));
        var page = Assert.IsType<FileCheck>(spec.Checks.Single(c => c.Subject == "/var/www/html/index.html"));
        Assert.Equal((FileType.File, 420, "root", "0"), (page.Type!.Value, page.Mode!.Value, page.Owner, page.Group));
        Assert.Equal(["Hello", "Kiln"], page.Contains);
        Assert.Equal("abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789", page.Sha256);
        Assert.Equal("/usr/bin/mawk", spec.Checks.OfType<FileCheck>().Single(c => c.Type == FileType.Symlink).LinkTarget);
        Assert.False(spec.Checks.OfType<FileCheck>().Single(c => c.Subject == "/etc/gone").Exists);
        Assert.Equal("1.22.1-9", spec.Checks.OfType<PackageCheck>().Single().Version);
        var user = spec.Checks.OfType<UserCheck>().Single();
        Assert.Equal((33L, 33L, "/var/www", "/usr/sbin/nologin"), (user.Uid!.Value, user.Gid!.Value, user.Home, user.Shell));
        Assert.Equal(33L, spec.Checks.OfType<GroupCheck>().Single().Gid);
        var nginx = spec.Checks.OfType<CommandCheck>().Single(c => c.Subject == "nginx -t");
        Assert.Equal((TestPhase.Bake, 0, TimeSpan.FromSeconds(5), "^$"), (nginx.Phase, nginx.ExitStatus, nginx.Timeout, nginx.StdoutMatches));
        Assert.Equal(["syntax is ok"], nginx.Stderr);
        var curl = spec.Checks.OfType<CommandCheck>().Single(c => c.Subject != "nginx -t");
        Assert.Equal((TestPhase.Boot, TimeSpan.FromSeconds(30)), (curl.Phase, curl.Timeout));
        Assert.Equal(["Hello"], curl.Stdout);
        var ports = spec.Checks.OfType<PortCheck>().ToList();
        Assert.Equal([("tcp", 8080, true), ("udp", 53, false)], ports.Select(p => (p.Protocol, p.Port, p.Listening)));
        var http = spec.Checks.OfType<HttpCheck>().Single();
        Assert.Equal((200, TimeSpan.FromSeconds(2.5)), (http.Status, http.Timeout));
        Assert.Equal([KeyValuePair.Create("Content-Type", "text/html")], http.Headers);
        var service = spec.Checks.OfType<ServiceCheck>().Single();
        Assert.Equal((true, true), (service.Enabled, service.Active));
        Assert.All(spec.Checks.Where(c => c.Section is "port" or "http" or "service"), c => Assert.Equal(TestPhase.Boot, c.Phase));
    }

    [Fact]
    public void Defaults_fill_in_what_is_not_written()
    {
        var spec = Parse("""
            file: {/srv/: {}}
            package: {curl: ~}
            command: {"true": {}}
            http: {"https://example.test/": {}}
            """);
        var file = spec.Checks.OfType<FileCheck>().Single();
        Assert.Equal(("/srv", true), (file.Subject, file.Exists));
        Assert.True(spec.Checks.OfType<PackageCheck>().Single().Installed);
        var command = spec.Checks.OfType<CommandCheck>().Single();
        Assert.Equal((0, TimeSpan.FromSeconds(30), TestPhase.Bake), (command.ExitStatus, command.Timeout, command.Phase));
        var http = spec.Checks.OfType<HttpCheck>().Single();
        Assert.Equal(200, http.Status);
    }

    [Fact]
    public void An_empty_spec_has_no_checks()
    {
        Assert.Empty(Parse("").Checks);
        Assert.Empty(Parse("file: {}\n").Checks);
    }

    [Fact]
    public void The_digest_ignores_layout_order_and_quoting_but_not_content()
    {
        var a = Parse("""
            user: {www-data: {exists: true}}
            file: {/a: {mode: "0644", contains: [x]}}
            """);
        var b = Parse("""
            file:
              "/a":
                contains: x
                mode: 0644
            user:
              www-data: {}
            """);
        var c = Parse("""
            file: {/a: {mode: "0640", contains: [x]}}
            user: {www-data: {}}
            """);
        Assert.Equal(a.Canonical, b.Canonical);
        Assert.Equal(a.Digest, b.Digest);
        Assert.NotEqual(a.Digest, c.Digest);
    }

    [Theory]
    [InlineData("file:\n  /a: {exist: true}\n", 2, 8, "unknown matcher `exist` in file `/a` (expected exists, type, mode")]
    [InlineData("package:\n  curl: {installed: true, state: ok}\n", 2, 27, "unknown matcher `state` in package `curl`")]
    [InlineData("user:\n  root: {name: root}\n", 2, 10, "unknown matcher `name` in user `root`")]
    [InlineData("group:\n  root: {uid: 0}\n", 2, 10, "unknown matcher `uid` in group `root`")]
    [InlineData("command:\n  \"true\": {exit-code: 0}\n", 2, 12, "unknown matcher `exit-code` in command `true`")]
    [InlineData("port:\n  tcp:80: {open: true}\n", 2, 12, "unknown matcher `open` in port `tcp:80`")]
    [InlineData("http:\n  http://x/: {code: 200}\n", 2, 15, "unknown matcher `code` in http `http://x/`")]
    [InlineData("files:\n  /a: {}\n", 1, 1, "unknown section `files` in the test spec")]
    [InlineData("files:\n  /a: {}\n", 1, 1, "; did you mean `file`?")]
    [InlineData("pakage:\n  curl: {}\n", 1, 1, "unknown section `pakage` in the test spec (expected file, package, user, group, command, port, http, service); did you mean `package`?")]
    [InlineData("file:\n  /a: {exist: true}\n", 2, 8, "unknown matcher `exist` in file `/a` (expected exists, type, mode, owner, group, link-target, contains, sha256); did you mean `exists`?")]
    [InlineData("file:\n  /a: {exists: yes}\n", 2, 16, "`exists` expects true or false, found `yes`")]
    [InlineData("file:\n  /a: {exists: \"true\"}\n", 2, 16, "`exists` expects true or false")]
    [InlineData("file:\n  /a: {type: socket}\n", 2, 14, "`type` must be one of file, directory, symlink, found `socket`")]
    [InlineData("file:\n  /a: {mode: rw-r--r--}\n", 2, 14, "`mode` expects an octal mode such as \"0644\"")]
    [InlineData("file:\n  /a: {mode: [644]}\n", 2, 14, "`mode` expects an octal mode such as \"0644\", found a list")]
    [InlineData("file:\n  /a: {contains: {a: b}}\n", 2, 18, "`contains` expects a string or a list of strings, found a map")]
    [InlineData("file:\n  /a: {contains: [a, [b]]}\n", 2, 22, "an item of `contains` expects a string, found a list")]
    [InlineData("file:\n  /a: {sha256: abc}\n", 2, 16, "`sha256` expects 64 hex digits")]
    [InlineData("file:\n  /a: {owner: \"a:b\"}\n", 2, 15, "`owner` expects a name or a numeric id")]
    [InlineData("file:\n  /a: {exists: false, mode: \"0644\"}\n", 2, 7, "has `exists: false` and matchers")]
    [InlineData("file:\n  /a: {type: file, link-target: /b}\n", 2, 7, "has `link-target` but a `type` other than symlink")]
    [InlineData("file:\n  a/b: {}\n", 2, 3, "file `a/b` is not an absolute path")]
    [InlineData("file:\n  /a/../b: {}\n", 2, 3, "file `/a/../b` is not an absolute path")]
    [InlineData("file:\n  /a: true\n", 2, 7, "file `/a` expects a map of matchers")]
    [InlineData("file: [/a]\n", 1, 7, "`file` expects a map of absolute path to checks, found a list")]
    [InlineData("package:\n  Nginx: {}\n", 2, 3, "package `Nginx` is not a Debian package name")]
    [InlineData("package:\n  curl: {installed: 1}\n", 2, 21, "`installed` expects true or false, found `1`")]
    [InlineData("user:\n  \"a:b\": {}\n", 2, 3, "user `a:b` is not a valid name")]
    [InlineData("user:\n  root: {uid: -1}\n", 2, 15, "`uid` expects a whole number from 0 to 4294967295, found `-1`")]
    [InlineData("user:\n  root: {home: [a]}\n", 2, 16, "`home` expects a string, found a list")]
    [InlineData("group:\n  root: {gid: zero}\n", 2, 15, "`gid` expects a whole number")]
    [InlineData("command:\n  \"true\": {exit-status: 256}\n", 2, 25, "`exit-status` expects a whole number from 0 to 255, found `256`")]
    [InlineData("command:\n  \"true\": {timeout: 0}\n", 2, 21, "`timeout` expects a number of seconds")]
    [InlineData("command:\n  \"true\": {timeout: 1h}\n", 2, 21, "`timeout` expects a number of seconds")]
    [InlineData("command:\n  \"true\": {phase: run}\n", 2, 19, "`phase` must be one of bake, boot, found `run`")]
    [InlineData("command:\n  \"true\": {stdout-matches: \"(\"}\n", 2, 28, "`stdout-matches` is not a valid regular expression")]
    [InlineData("command:\n  \"true\": {stderr-matches: \"[a\"}\n", 2, 28, "`stderr-matches` is not a valid regular expression")]
    [InlineData("command:\n  \" \": {}\n", 2, 3, "command ` ` is empty")]
    [InlineData("port:\n  \"8080\": {}\n", 2, 3, "port `8080` is not PROTOCOL:PORT")]
    [InlineData("port:\n  tcp:70000: {}\n", 2, 3, "port `tcp:70000` is not PROTOCOL:PORT")]
    [InlineData("port:\n  sctp:80: {}\n", 2, 3, "port `sctp:80` is not PROTOCOL:PORT")]
    [InlineData("port:\n  tcp:80: {listening: maybe}\n", 2, 23, "`listening` expects true or false")]
    [InlineData("http:\n  ftp://x/: {}\n", 2, 3, "http `ftp://x/` is not an http or https URL")]
    [InlineData("http:\n  /index.html: {}\n", 2, 3, "is not an http or https URL")]
    [InlineData("http:\n  http://x/: {status: 99}\n", 2, 23, "`status` expects a whole number from 100 to 599")]
    [InlineData("http:\n  http://x/: {headers: [a]}\n", 2, 24, "`headers` expects a map of header name")]
    [InlineData("http:\n  http://x/: {headers: {\"a b\": c}}\n", 2, 25, "`a b` is not an HTTP header name")]
    [InlineData("http:\n  http://x/: {headers: {a: [c]}}\n", 2, 28, "header `a` expects a string its value contains")]
    [InlineData("http:\n  http://x/: {body: ~}\n", 2, 21, "`body` expects a string or a list of strings, found nothing")]
    [InlineData("user:\n  root: {exists: }\n", 2, 18, "`exists` has no value; expected true or false")]
    public void A_bad_spec_is_reported_at_its_line_and_column(string yaml, int line, int column, string message) =>
        AssertProblem(Problems(yaml), line, column, message);

    [Fact]
    public void Service_checks_need_a_systemd_boot()
    {
        AssertProblem(Problems("service:\n  nginx.service: {active: true}\n"), 1, 1, "`service` checks need `boot: systemd`");
        Assert.Single(Parse("service:\n  nginx.service: {active: true}\n", BootMode.Systemd).Checks);
        AssertProblem(Problems("service:\n  nginx.service: {running: true}\n", BootMode.Systemd), 2, 19, "unknown matcher `running` in service `nginx.service`");
        AssertProblem(Problems("service:\n  \"bad unit\": {}\n", BootMode.Systemd), 2, 3, "service `bad unit` is not a systemd unit name");
    }

    [Fact]
    public void Duplicate_subjects_and_matchers_are_reported()
    {
        var problems = Problems("""
            file:
              /a: {exists: true, exists: false}
              /a: {}
            """);
        AssertProblem(problems, 2, 22, "duplicate key `exists` in file `/a`");
        AssertProblem(problems, 3, 3, "duplicate key `/a` in `file`");
    }

    [Fact]
    public void Every_problem_is_collected_in_file_order()
    {
        var problems = Problems("""
            file:
              /a: {mode: bad, owner: [x]}
            command:
              "true": {exit-status: x}
            bogus: 1
            """);
        Assert.Equal([(2, 14), (2, 26), (4, 25), (5, 1)], problems.Select(p => (p.Mark.Line, p.Mark.Column)));
    }

    [Theory]
    [InlineData("[a, b]\n", 1, 1, "a test spec is a map of sections")]
    [InlineData("file: {/a: {}\n", 2, 1, "YAML syntax error")]
    public void A_spec_that_is_not_a_map_of_sections_is_refused(string yaml, int line, int column, string message) =>
        AssertProblem(Problems(yaml), line, column, message);
}
