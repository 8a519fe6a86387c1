using System.Text.Json;
using System.Xml.Linq;

namespace Kiln.Cli.Tests;

/// <summary>Boot-phase tests of a tiny busybox web server (busybox httpd on 8080) through the kiln command.</summary>
public sealed class BootPhaseTests : IDisposable
{
    private readonly TempDir _store = new("kiln-store");

    public void Dispose() => _store.Dispose();

    private static TinyContext Server(string test, string cmd = "[/bin/busybox, httpd, -f, -p, \"8080\", -h, /www]")
    {
        var ctx = new TinyContext(
            "images:\n  srv:\n    from: scratch\n    steps:\n" + TinyContext.RootStep +
            "      - copy: www/\n        to: /www/\n" +
            $"    config:\n      cmd: {cmd}\n      expose: [8080]\n    test:\n{test}");
        ctx.Write("www/index.html", "hi from busybox\n");
        return ctx;
    }

    private const string Good =
        "      file: {/www/index.html: {contains: hi}}\n" +
        "      port: {\"tcp:8080\": {listening: true}, \"tcp:9090\": {listening: false}}\n" +
        "      http: {\"http://127.0.0.1:8080/index.html\": {status: 200, body: [hi from busybox]}}\n" +
        "      command: {\"wget -q -O - http://127.0.0.1:8080/index.html\": {phase: boot, stdout: hi}}\n";

    private static JsonElement Phase(KilnProcess.Result r, string phase)
    {
        using var doc = JsonDocument.Parse(r.Stdout);
        return doc.RootElement.GetProperty("images")[0].GetProperty("tests").EnumerateArray()
            .Single(p => p.GetProperty("phase").GetString() == phase).Clone();
    }

    [Fact]
    public void Port_http_and_boot_commands_pass_against_the_instance_and_nothing_of_it_remains()
    {
        using var ctx = Server(Good);
        var r = KilnProcess.Run(_store.Path, "build", "--json", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
        var boot = Phase(r, "boot");
        Assert.True(boot.GetProperty("passed").GetBoolean(), r.Stdout);
        Assert.Equal(["command wget -q -O - http://127.0.0.1:8080/index.html", "port tcp:8080", "port tcp:9090", "http http://127.0.0.1:8080/index.html"],
            boot.GetProperty("checks").EnumerateArray().Select(c => c.GetProperty("name").GetString()!));
        Leftovers.AssertNone(_store.Path);

        var again = KilnProcess.Run(_store.Path, "build", "--json", ctx.Path);
        Assert.True(Phase(again, "boot").GetProperty("cached").GetBoolean());
        var rerun = KilnProcess.Run(_store.Path, "test", "srv", "--phase", "boot", "-f", ctx.Path);
        Assert.True(rerun.ExitCode == 0, rerun.All);
        Assert.Contains("test boot: 4 passed in", rerun.Stdout);
        Leftovers.AssertNone(_store.Path);
    }

    [Fact]
    public void An_image_with_a_user_serves_as_that_user_and_passes_its_boot_checks()
    {
        // The instance's command changes its user under a waiting PID 1 (kiln-sandbox-exec --init): the checks find it.
        using var ctx = new TinyContext(
            "images:\n  srv:\n    from: scratch\n    steps:\n" + TinyContext.RootStep +
            "      - copy: www/\n        to: /www/\n      - user: \"1000:1000\"\n" +
            "    config:\n      cmd: [/bin/busybox, httpd, -f, -p, \"8080\", -h, /www]\n      expose: [8080]\n    test:\n" +
            "      http: {\"http://127.0.0.1:8080/index.html\": {status: 200, body: [hi from busybox]}}\n" +
            "      command: {\"busybox ps -o user,args\": {phase: boot, stdout: [\"1000     /bin/busybox httpd\"]}}\n");
        ctx.Write("www/index.html", "hi from busybox\n");
        var r = KilnProcess.Run(_store.Path, "build", "--json", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
        Assert.True(Phase(r, "boot").GetProperty("passed").GetBoolean(), r.Stdout);
        Leftovers.AssertNone(_store.Path);
    }

    [Fact]
    public void An_http_check_retries_connections_dropped_unanswered_while_the_server_settles()
    {
        // As under systemd's nginx.service, whose `nginx -t` binds the port before nginx does: a connection can be
        // accepted and then dropped without an answer. Here the server drops its first two connections (.NET may
        // retry a dropped request once by itself), then answers.
        using var ctx = Server(
            "      http: {\"http://127.0.0.1:8080/index.html\": {status: 200, body: [hi from busybox]}}\n",
            cmd: "[/bin/busybox, nc, -ll, -p, \"8080\", -e, /bin/answer]");
        ctx.Write("rootfs/bin/answer", """
            #!/bin/sh
            n=$(/bin/busybox cat /tmp/connections 2>/dev/null || echo 0)
            echo $((n + 1)) > /tmp/connections
            [ "$n" -ge 2 ] || exit 0
            while read -r line && [ "$line" != "$(printf '\r')" ]; do :; done
            printf 'HTTP/1.0 200 OK\r\nContent-Length: 16\r\nConnection: close\r\n\r\nhi from busybox\n'

            """);
        File.SetUnixFileMode(ctx.Path + "/rootfs/bin/answer", (UnixFileMode)Convert.ToInt32("755", 8));
        var r = KilnProcess.Run(_store.Path, "build", "--json", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
        Assert.True(Phase(r, "boot").GetProperty("passed").GetBoolean(), r.Stdout);
        Leftovers.AssertNone(_store.Path);
    }

    [Fact]
    public void A_wrong_page_rejects_the_image_with_the_body_it_got()
    {
        using var ctx = Server(Good.Replace("[hi from busybox]", "[Hello from Kiln]", StringComparison.Ordinal));
        using var junit = new TempDir("kiln-junit");
        var r = KilnProcess.Run(_store.Path, "build", "--junit", junit.Sub("r.xml"), ctx.Path);
        Assert.True(r.ExitCode == 1, r.All);
        Assert.Contains("FAILED srv (boot) http http://127.0.0.1:8080/index.html", r.Stderr);
        Assert.Contains("body: expected \"Hello from Kiln\"", r.Stderr);
        Assert.Contains("actual   \"hi from busybox\"", r.Stderr);
        var boot = XDocument.Load(junit.Sub("r.xml")).Root!.Elements("testsuite").Single(s => s.Attribute("name")!.Value == "srv boot");
        Assert.Equal("1", boot.Attribute("failures")!.Value);
        Assert.NotNull(StoreReader.ManifestDigest(_store.Path, "srv.rejected"));
        Assert.DoesNotContain("\"srv\"", File.ReadAllText(Path.Combine(_store.Path, "index.json")));
        Leftovers.AssertNone(_store.Path);
    }

    [Fact]
    public void An_instance_that_exits_before_its_ports_listen_fails_every_check_and_shows_its_output()
    {
        using var ctx = Server(Good, cmd: "[/bin/sh, -c, \"echo no server here; exit 4\"]");
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.True(r.ExitCode == 1, r.All);
        Assert.Contains("start: expected the instance starts and listens on its exposed ports", r.Stderr);
        Assert.True(r.Stderr.Contains("no server here"), r.All);
        Leftovers.AssertNone(_store.Path);
    }

    [Fact]
    public void A_failing_bake_phase_skips_the_boot_phase()
    {
        using var ctx = Server(Good.Replace("{contains: hi}", "{contains: nothing-like-this}", StringComparison.Ordinal));
        var r = KilnProcess.Run(_store.Path, "build", "--json", ctx.Path);
        Assert.True(r.ExitCode == 1, r.All);
        Assert.False(Phase(r, "bake").GetProperty("passed").GetBoolean());
        Assert.Equal("the bake phase failed", Phase(r, "boot").GetProperty("skipped").GetString());
    }
}
