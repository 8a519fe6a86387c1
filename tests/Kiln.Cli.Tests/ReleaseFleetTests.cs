using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Kiln.Build.Promotion;
using Kiln.Oci;

namespace Kiln.Cli.Tests;

/// <summary>A release target of external servers (a fleet): here busybox httpd in network namespaces the test made,
/// each on a veth of its own. Kiln boots nothing; it checks the addresses and points its balancer at them.</summary>
[Trait("Tier", "Slow")]
public sealed class ReleaseFleetTests : IDisposable
{
    private readonly TempDir _store = new("kiln-store");
    private readonly TempDir _www = new("kiln-fleet");
    private readonly string _prefix = "kf" + Guid.NewGuid().ToString("N")[..5];
    private readonly int _subnet = Random.Shared.Next(0, 250);
    private readonly List<string> _namespaces = [];
    private readonly List<Process> _servers = [];

    public void Dispose()
    {
        foreach (var p in _servers)
        {
            p.Kill();
            p.WaitForExit();
            p.Dispose();
        }
        foreach (var ns in _namespaces)
        {
            KilnProcess.Tool("ip", "netns", "delete", ns);
        }
        _www.Dispose();
        _store.Dispose();
    }

    private static void Ip(params string[] args)
    {
        var r = KilnProcess.Tool("ip", args);
        Assert.True(r.ExitCode == 0, $"ip {string.Join(' ', args)}: {r.All}");
    }

    /// <summary>A namespace joined to the host by a veth pair (a /30 of its own), serving "fleet N" on 8080.</summary>
    private string Server(int n)
    {
        var ns = $"{_prefix}{n}";
        Ip("netns", "add", ns);
        _namespaces.Add(ns);
        string host = $"10.199.{_subnet}.{4 * n + 1}", inside = $"10.199.{_subnet}.{4 * n + 2}";
        Ip("link", "add", ns + "h", "type", "veth", "peer", "name", ns + "n");
        Ip("link", "set", ns + "n", "netns", ns);
        Ip("addr", "add", host + "/30", "dev", ns + "h");
        Ip("link", "set", ns + "h", "up");
        Ip("-n", ns, "addr", "add", inside + "/30", "dev", ns + "n");
        Ip("-n", ns, "link", "set", ns + "n", "up");
        Ip("-n", ns, "link", "set", "lo", "up");
        var dir = _www.Sub($"s{n}");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "index.html"), $"fleet {n}\n");
        var psi = new ProcessStartInfo("ip") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "netns", "exec", ns, "/bin/busybox", "httpd", "-f", "-p", "8080", "-h", dir })
        {
            psi.ArgumentList.Add(a);
        }
        _servers.Add(Process.Start(psi)!);
        return inside + ":8080";
    }

    [Fact]
    public async Task A_fleet_is_checked_and_served_and_an_unreachable_server_is_refused()
    {
        var servers = new[] { Server(0), Server(1) };
        int port;
        using (var l = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0))
        {
            l.Start();
            port = ((IPEndPoint)l.LocalEndpoint).Port;
        }
        string Yaml(IEnumerable<string> list) =>
            "images:\n  srv:\n    from: scratch\n    steps:\n" + TinyContext.RootStep +
            "      - copy: www/\n        to: /www/\n" +
            "    config:\n      cmd: [/bin/busybox, httpd, -f, -p, \"8080\", -h, /www]\n      expose: [8080]\n" +
            "    test:\n      http: {\"http://127.0.0.1:8080/index.html\": {status: 200, body: [fleet]}}\n" +
            $"release:\n  web:\n    image: srv\n    channel: prod\n    port: 8080\n    listen: 127.0.0.1:{port}\n    servers: [{string.Join(", ", list)}]\n";
        using var ctx = new TinyContext(Yaml(servers));
        ctx.Write("www/index.html", "fleet image\n");
        var build = KilnProcess.Run(_store.Path, "build", "--json", ctx.Path);
        Assert.True(build.ExitCode == 0, build.All);
        var digest = Digest.Parse(JsonDocument.Parse(build.Stdout).RootElement.GetProperty("images")[0].GetProperty("digest").GetString()!);
        await new PromotionLog(Path.Combine(_store.Path, "kiln", "promotions.jsonl")).AppendAsync(new PromotionRecord
        {
            Digest = digest,
            Image = "srv",
            Channel = "prod",
            Time = DateTimeOffset.UtcNow,
            Who = "test",
        });
        try
        {
            var r = KilnProcess.Run(_store.Path, "release", "-f", ctx.Path, "web");
            Assert.True(r.ExitCode == 0, r.All);
            using var http = new HttpClient();
            var seen = new HashSet<string>();
            for (int i = 0; i < 20; i++)
            {
                seen.Add((await http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/index.html"))).Trim());
            }
            Assert.Equal(["fleet 0", "fleet 1"], seen.Order());
            var status = KilnProcess.Run(_store.Path, "release", "status", "--json", "-f", ctx.Path, "web");
            var listed = JsonDocument.Parse(status.Stdout).RootElement.GetProperty("servers").EnumerateArray()
                .Select(s => $"{s.GetProperty("address").GetString()} {s.GetProperty("status").GetString()}").Order().ToList();
            Assert.Equal(servers.Select(s => $"{s} UP").Order().ToList(), listed);

            // A server nothing listens on is refused before any traffic moves; the two keep serving.
            ctx.Write("kiln.yaml", Yaml([.. servers, $"10.199.{_subnet}.{4 * 0 + 2}:8081"]));
            var refused = KilnProcess.Run(_store.Path, "release", "-f", ctx.Path, "web");
            Assert.True(refused.ExitCode == 1, refused.All);
            Assert.Contains(":8081: cannot connect", refused.Stderr);
            Assert.Equal("fleet", (await http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/index.html")))[..5]);
        }
        finally
        {
            var stop = KilnProcess.Run(_store.Path, "release", "stop", "-f", ctx.Path, "web");
            Assert.True(stop.ExitCode == 0, stop.All);
        }
        // Kiln does not own a fleet's servers: they still run.
        Assert.All(_servers, p => Assert.False(p.HasExited));
        Leftovers.AssertNone(_store.Path);
    }
}
