using System.Text.Json;
using System.Xml.Linq;

namespace Kiln.Cli.Tests;

/// <summary>Bake-phase tests of tiny busybox images through the kiln command: the gate, the report, the cache.</summary>
public sealed class BakePhaseTests : IDisposable
{
    private readonly TempDir _store = new("kiln-store");

    public void Dispose() => _store.Dispose();

    private const string Steps =
        "      - run: echo hello > /etc/greeting && chmod 640 /etc/greeting && echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd\n";

    private static string Yaml(string test, string extraImages = "") =>
        $"images:\n  tiny:\n    from: scratch\n    steps:\n{TinyContext.RootStep}{Steps}    test: {test}\n{extraImages}";

    private const string Child = "  child:\n    from: tiny\n    steps:\n      - run: touch /etc/child\n";

    private const string GoodSpec = """
        file:
          /etc/greeting: {exists: true, type: file, mode: "0640", owner: root, group: 0, contains: [hello]}
          /bin/sh: {type: symlink, link-target: busybox}
          /etc/nothing: {exists: false}
        user:
          root: {uid: 0, gid: 0, home: /root, shell: /bin/sh}
        command:
          "cat /etc/greeting; echo oops >&2": {exit-status: 0, stdout: [hello], stderr: oops, stdout-matches: "^hel+o$"}
        """;

    private KilnProcess.Result Build(TinyContext ctx, params string[] extra) =>
        KilnProcess.Run(_store.Path, ["build", "--json", .. extra, ctx.Path]);

    private static JsonElement Image(KilnProcess.Result r, string name)
    {
        using var doc = JsonDocument.Parse(r.Stdout);
        return doc.RootElement.GetProperty("images").EnumerateArray().First(i => i.GetProperty("name").GetString() == name).Clone();
    }

    private static JsonElement Bake(KilnProcess.Result r, string name) =>
        Image(r, name).GetProperty("tests").EnumerateArray().Single(p => p.GetProperty("phase").GetString() == "bake");

    [Fact]
    public void File_user_and_command_checks_pass_and_the_junit_file_lists_each_with_its_time()
    {
        using var ctx = new TinyContext(Yaml("tests/spec.yaml"));
        ctx.Write("tests/spec.yaml", GoodSpec);
        using var junit = new TempDir("kiln-junit");
        var r = Build(ctx, "--junit", junit.Sub("report.xml"));
        Assert.True(r.ExitCode == 0, r.All);
        var bake = Bake(r, "tiny");
        Assert.True(bake.GetProperty("passed").GetBoolean());
        Assert.False(bake.GetProperty("cached").GetBoolean());
        Assert.Equal(5, bake.GetProperty("checks").GetArrayLength());

        var suite = XDocument.Load(junit.Sub("report.xml")).Root!.Element("testsuite")!;
        Assert.Equal("tiny bake", suite.Attribute("name")!.Value);
        Assert.Equal("0", suite.Attribute("failures")!.Value);
        var cases = suite.Elements("testcase").ToList();
        Assert.Equal(5, cases.Count);
        Assert.Contains(cases, c => c.Attribute("name")!.Value == "user root");
        Assert.All(cases, c => Assert.True(double.Parse(c.Attribute("time")!.Value, System.Globalization.CultureInfo.InvariantCulture) >= 0));
        Leftovers.AssertNone(_store.Path);
    }

    [Fact]
    public void An_inline_spec_works_like_a_file()
    {
        using var ctx = new TinyContext(Yaml("\n      file: {/etc/greeting: {contains: hello}}\n      command: {\"test -f /etc/greeting\": {}}"));
        var r = Build(ctx);
        Assert.True(r.ExitCode == 0, r.All);
        Assert.Equal(2, Bake(r, "tiny").GetProperty("checks").GetArrayLength());
    }

    [Fact]
    public void Package_checks_read_the_images_dpkg_status_stanza_by_stanza()
    {
        using var ctx = new TinyContext(Yaml("tests/spec.yaml"));
        // Continuation lines, a package with a stanza per architecture (the installed one counts wherever it stands),
        // a removed package whose config files stay, and a stanza with CRLF line ends.
        ctx.Write("rootfs/var/lib/dpkg/status",
            "Package: alpha\nStatus: install ok installed\nVersion: 1.0-1\nDescription: first\n Package: not-a-field\n\n" +
            "Package: beta\nStatus: deinstall ok config-files\nVersion: 2.0\n\n" +
            "Package: gamma\nArchitecture: amd64\nStatus: install ok installed\nVersion: 3.1\n\n" +
            "Package: gamma\nArchitecture: i386\nStatus: deinstall ok config-files\nVersion: 3.0\n\n" +
            "Package: delta\r\nStatus: install ok installed\r\nVersion: 4.0~rc1\r\n\r\n" +
            "Package: epsilon\nVersion: 5\nStatus: install ok installed\n");
        ctx.Write("tests/spec.yaml", """
            package:
              alpha: {installed: true, version: 1.0-1}
              beta: {installed: false}
              gamma: {installed: true, version: "3.1"}
              delta: {version: 4.0~rc1}
              epsilon: {version: "5"}
              not-a-field: {installed: false}
              absent: {installed: false}
            """);
        var r = Build(ctx);
        Assert.True(r.ExitCode == 0, r.All);
        Assert.Equal(7, Bake(r, "tiny").GetProperty("checks").GetArrayLength());

        ctx.Write("tests/spec.yaml", """
            package:
              alpha: {version: "9"}
              beta: {installed: true}
              absent: {installed: true}
            """);
        r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.True(r.ExitCode == 1, r.All);
        foreach (var said in new[] { "version: expected 9", "actual   1.0-1", "not installed (status: deinstall ok config-files)", "FAILED tiny (bake) package absent" })
        {
            Assert.True(r.Stderr.Contains(said, StringComparison.Ordinal), $"'{said}' not in:\n{r.Stderr}");
        }
    }

    [Fact]
    public void A_command_of_plain_words_runs_without_the_shell_as_its_child_would()
    {
        // The image's /bin/sh is a "dash" that cannot run (its interpreter is missing): only a command kiln runs itself
        // can. (Under busybox's own sh every command goes to the shell, as its applets come before the image's files.)
        using var ctx = new TinyContext(Yaml("tests/spec.yaml").Replace("    test:",
            "      - run: printf '#!/nowhere\\n' > /bin/dash && chmod 755 /bin/dash && ln -sf dash /bin/sh\n    test:", StringComparison.Ordinal));
        ctx.Write("rootfs/bin/plain", "not executable\n");
        ctx.Write("tests/spec.yaml", """
            command:
              busybox cat /proc/self/stat: {exit-status: 0, stdout-matches: "^2 [(]busybox[)] "}
              busybox head -c 3 /etc/greeting: {stdout: hel}
              "busybox cat /etc/greeting | busybox wc -l": {exit-status: 127, stderr: "cannot run /bin/sh"}
              not-in-the-image --x: {exit-status: 127, stderr: "cannot run /bin/sh"}
              plain: {exit-status: 127, stderr: "cannot run /bin/sh"}
            """);
        var r = Build(ctx);
        Assert.True(r.ExitCode == 0, r.All);
        Assert.Equal(5, Bake(r, "tiny").GetProperty("checks").GetArrayLength());
    }

    [Fact]
    public void A_failing_check_rejects_the_image_and_the_previous_good_image_keeps_its_name()
    {
        using var ctx = new TinyContext(Yaml("tests/spec.yaml", Child));
        ctx.Write("tests/spec.yaml", GoodSpec);
        var good = Build(ctx);
        Assert.True(good.ExitCode == 0, good.All);
        var goodDigest = StoreReader.ManifestDigest(_store.Path, "tiny");
        var goodChild = StoreReader.ManifestDigest(_store.Path, "child");

        // A changed image (a new greeting) and a wrong expectation.
        ctx.Write("kiln.yaml", Yaml("tests/spec.yaml", Child).Replace("echo hello", "echo goodbye", StringComparison.Ordinal));
        ctx.Write("tests/spec.yaml", GoodSpec + "\n  \"exit 3\": {exit-status: 0}\n");
        using var junit = new TempDir("kiln-junit");
        var r = KilnProcess.Run(_store.Path, "build", "--junit", junit.Sub("report.xml"), ctx.Path);

        Assert.True(r.ExitCode == 1, r.All);
        Assert.Contains("FAILED tiny (bake) file /etc/greeting", r.Stderr);
        Assert.Contains("contains: expected \"hello\"", r.Stderr);
        Assert.Contains("\"goodbye\"", r.Stderr);
        Assert.Contains("FAILED tiny (bake) command exit 3", r.Stderr);
        Assert.Contains("exit-status: expected 0", r.Stderr);
        Assert.Contains("actual   3", r.Stderr);
        Assert.Contains("child was not built", r.Stderr);

        Assert.Equal(goodDigest, StoreReader.ManifestDigest(_store.Path, "tiny"));
        Assert.Equal(goodChild, StoreReader.ManifestDigest(_store.Path, "child"));
        var rejected = StoreReader.ManifestDigest(_store.Path, "tiny.rejected");
        Assert.NotEqual(goodDigest, rejected);
        Assert.DoesNotContain("child.rejected", File.ReadAllText(Path.Combine(_store.Path, "index.json")));

        var suite = XDocument.Load(junit.Sub("report.xml")).Root!.Element("testsuite")!;
        Assert.Equal("3", suite.Attribute("failures")!.Value);
        var failed = suite.Elements("testcase").Where(c => c.Element("failure") is not null).Select(c => c.Attribute("name")!.Value).ToList();
        Assert.Equal(["file /etc/greeting", "command cat /etc/greeting; echo oops >&2", "command exit 3"], failed);
        Assert.Contains("expected: \"hello\"", suite.Elements("testcase").First(c => c.Element("failure") is not null).Element("failure")!.Value);

        // The rejected image is there to inspect; kiln test runs the spec against the image named tiny.
        Assert.Equal(0, KilnProcess.Run(_store.Path, "inspect", "tiny.rejected").ExitCode);
        Leftovers.AssertNone(_store.Path);
    }

    [Fact]
    public void A_spec_change_that_the_named_image_fails_removes_the_name()
    {
        using var ctx = new TinyContext(Yaml("tests/spec.yaml"));
        ctx.Write("tests/spec.yaml", GoodSpec);
        var good = Build(ctx);
        Assert.True(good.ExitCode == 0, good.All);
        var digest = StoreReader.ManifestDigest(_store.Path, "tiny");

        // The same image, a stricter spec.
        ctx.Write("tests/spec.yaml", GoodSpec + "\n  \"exit 3\": {exit-status: 0}\n");
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);

        Assert.True(r.ExitCode == 1, r.All);
        Assert.Contains("the name was removed", r.Stdout);
        Assert.Equal(digest, StoreReader.ManifestDigest(_store.Path, "tiny.rejected"));
        Assert.DoesNotContain("\"tiny\"", File.ReadAllText(Path.Combine(_store.Path, "index.json")));

        // Back to the spec it passes: the same image takes its name again.
        ctx.Write("tests/spec.yaml", GoodSpec);
        var again = Build(ctx);
        Assert.True(again.ExitCode == 0, again.All);
        Assert.Equal(digest, StoreReader.ManifestDigest(_store.Path, "tiny"));
        Assert.DoesNotContain("tiny.rejected", File.ReadAllText(Path.Combine(_store.Path, "index.json")));
    }

    [Fact]
    public void A_command_check_that_writes_leaves_the_image_digest_and_files_unchanged()
    {
        using var ctx = new TinyContext($"images:\n  tiny:\n    from: scratch\n    steps:\n{TinyContext.RootStep}{Steps}");
        var plain = Build(ctx);
        Assert.True(plain.ExitCode == 0, plain.All);
        var digest = StoreReader.ManifestDigest(_store.Path, "tiny");
        var tree = TreeListing.OfImage(_store.Path, "tiny");
        var snapshots = Directory.GetDirectories(Path.Combine(_store.Path, "kiln", "snapshots")).Order().ToList();

        ctx.Write("kiln.yaml", Yaml("tests/spec.yaml"));
        ctx.Write("tests/spec.yaml", """
            command:
              "touch /etc/x && rm /etc/greeting && mkdir /made && echo written > /made/file": {}
              "test ! -e /etc/x && test -e /etc/greeting": {}
            file:
              /etc/x: {exists: false}
            """);
        var r = Build(ctx);
        Assert.True(r.ExitCode == 0, r.All);
        Assert.True(Bake(r, "tiny").GetProperty("passed").GetBoolean(), r.Stdout);
        Assert.Equal(digest, StoreReader.ManifestDigest(_store.Path, "tiny"));
        TreeListing.AssertSame(tree, TreeListing.OfImage(_store.Path, "tiny"));
        Assert.Equal(snapshots, Directory.GetDirectories(Path.Combine(_store.Path, "kiln", "snapshots")).Order().ToList());
        Leftovers.AssertNone(_store.Path);
    }

    [Fact]
    public void A_rebuild_with_no_change_reruns_no_check_and_a_changed_spec_reruns_them()
    {
        using var ctx = new TinyContext(Yaml("tests/spec.yaml"));
        ctx.Write("tests/spec.yaml", GoodSpec);
        Assert.True(Build(ctx).ExitCode == 0);

        var again = Build(ctx);
        Assert.True(again.ExitCode == 0, again.All);
        Assert.True(Bake(again, "tiny").GetProperty("cached").GetBoolean());
        var text = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.Contains("test bake: 5 passed (cached)", text.Stdout);

        ctx.Write("tests/spec.yaml", GoodSpec + "\n  \"true\": {}\n");
        var changed = Build(ctx);
        Assert.True(changed.ExitCode == 0, changed.All);
        Assert.False(Bake(changed, "tiny").GetProperty("cached").GetBoolean());
        Assert.Equal(6, Bake(changed, "tiny").GetProperty("checks").GetArrayLength());
    }

    [Fact]
    public void Kiln_test_runs_the_spec_again_and_reports_failures_with_exit_1()
    {
        using var ctx = new TinyContext(Yaml("tests/spec.yaml"));
        ctx.Write("tests/spec.yaml", GoodSpec);
        Assert.True(Build(ctx).ExitCode == 0);

        var r = KilnProcess.Run(_store.Path, "test", "tiny", "--json", "-f", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
        using (var doc = JsonDocument.Parse(r.Stdout))
        {
            var phase = doc.RootElement.GetProperty("tests")[0];
            Assert.False(phase.GetProperty("cached").GetBoolean());
            Assert.True(phase.GetProperty("passed").GetBoolean());
        }

        ctx.Write("tests/spec.yaml", "user:\n  root: {shell: /bin/bash}\n");
        using var junit = new TempDir("kiln-junit");
        var failed = KilnProcess.Run(_store.Path, "test", "tiny", "--phase", "bake", "--junit", junit.Sub("r.xml"), "-f", ctx.Path);
        Assert.True(failed.ExitCode == 1, failed.All);
        Assert.Contains("shell: expected /bin/bash", failed.Stderr);
        Assert.Contains("actual   /bin/sh", failed.Stderr);
        Assert.Single(XDocument.Load(junit.Sub("r.xml")).Descendants("failure"));

        Assert.Equal(2, KilnProcess.Run(_store.Path, "test", "tiny", "--phase", "later", "-f", ctx.Path).ExitCode);
        Assert.Equal(2, KilnProcess.Run(_store.Path, "test", "nosuch", "-f", ctx.Path).ExitCode);
        Leftovers.AssertNone(_store.Path);
    }

    [Fact]
    public void A_command_check_that_runs_too_long_is_stopped_and_fails()
    {
        using var ctx = new TinyContext(Yaml("\n      command: {\"sleep 60\": {timeout: 0.5}}"));
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.True(r.ExitCode == 1, r.All);
        Assert.Contains("timeout: expected finishes within 0.5s", r.Stderr);
        Leftovers.AssertNone(_store.Path);
    }

    [Fact]
    public void A_bad_spec_exits_2_with_the_spec_file_line_and_column_before_anything_is_built()
    {
        using var ctx = new TinyContext(Yaml("tests/spec.yaml"));
        ctx.Write("tests/spec.yaml", "file:\n  /etc/greeting: {exist: true, mode: 644x}\n");
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.Equal(2, r.ExitCode);
        var spec = Path.Combine(ctx.Path, "tests", "spec.yaml");
        Assert.Contains($"{spec}:2:19: unknown matcher `exist`", r.Stderr);
        Assert.Contains($"{spec}:2:38: `mode` expects an octal mode", r.Stderr);
        Assert.False(Directory.Exists(Path.Combine(_store.Path, "blobs")));
    }

    [Fact]
    public void With_a_bad_spec_and_a_bad_target_the_target_is_reported_and_nothing_is_created()
    {
        // The specs are read on another core while the build is planned: the plan's problem still comes first.
        using var ctx = new TinyContext(Yaml("tests/spec.yaml"));
        ctx.Write("tests/spec.yaml", "file:\n  /etc/greeting: {exist: true}\n");
        var r = KilnProcess.Run(_store.Path, "build", "-t", "no-such-image", ctx.Path);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("no image named no-such-image", r.Stderr);
        Assert.DoesNotContain("exist", r.Stderr);
        Assert.False(Directory.Exists(Path.Combine(_store.Path, "blobs")));
    }
}
