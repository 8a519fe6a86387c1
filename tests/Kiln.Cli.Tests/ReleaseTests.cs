using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Kiln.Build.Promotion;
using Kiln.Oci;

namespace Kiln.Cli.Tests;

/// <summary><c>kiln release</c> of tiny busybox httpd images behind a real HAProxy, under a load of concurrent
/// clients: blue-green without a failed request, a bad canary rolled back, the channel gate, a kill -9 mid-release,
/// and a fleet of addresses. One store and one target throughout: each instance set costs a boot.</summary>
[Trait("Tier", "Slow")]
public sealed class ReleaseTests : IDisposable
{
    private readonly TempDir _store = new("kiln-store");
    private readonly TinyContext _ctx;
    private readonly int _port = FreePort();

    public ReleaseTests()
    {
        _ctx = new TinyContext(Yaml("blue-green"));
        Version("v1", ok: true);
    }

    public void Dispose()
    {
        // Whatever happened, nothing of the target may outlive the test.
        KilnProcess.Run(_store.Path, "release", "stop", "-f", _ctx.Path, "web");
        _ctx.Dispose();
        _store.Dispose();
    }

    private static int FreePort()
    {
        using var l = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private string Yaml(string strategy, string servers = "") =>
        "images:\n  srv:\n    from: scratch\n    steps:\n" + TinyContext.RootStep +
        "      - copy: www/\n        to: /www/\n" +
        "    config:\n      cmd: [/bin/busybox, httpd, -f, -p, \"8080\", -h, /www]\n      expose: [8080]\n" +
        "    test:\n      http: {\"http://127.0.0.1:8080/index.html\": {status: 200}}\n" +
        "release:\n  web:\n    image: srv\n    channel: staging\n" + (servers.Length > 0 ? servers : "    instances: 2\n") +
        $"    port: 8080\n    listen: 127.0.0.1:{_port}\n    strategy: {strategy}\n" +
        (strategy == "canary" ? "    canary: {steps: [10, 50, 100], pause: 3s, max-error-rate: 1%}\n" : "");

    /// <summary>The site of one version: a page the spec checks and a CGI the load hits, which a bad version fails.</summary>
    private void Version(string version, bool ok)
    {
        _ctx.Write("www/index.html", version + "\n");
        _ctx.Write("www/cgi-bin/app", ok
            ? $"#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n{version}\\n'\n"
            : "#!/bin/sh\nprintf 'Status: 500 Internal Server Error\\r\\nContent-Type: text/plain\\r\\n\\r\\nbroken\\n'\n");
        File.SetUnixFileMode(Path.Combine(_ctx.Path, "www/cgi-bin/app"), (UnixFileMode)0b111_101_101);
    }

    private Digest Build()
    {
        var r = KilnProcess.Run(_store.Path, "build", "--json", _ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
        using var doc = JsonDocument.Parse(r.Stdout);
        return Digest.Parse(doc.RootElement.GetProperty("images")[0].GetProperty("digest").GetString()!);
    }

    private Task Promote(Digest digest) => new PromotionLog(Path.Combine(_store.Path, "kiln", "promotions.jsonl")).AppendAsync(new PromotionRecord
    {
        Digest = digest,
        Image = "srv",
        Channel = "staging",
        Time = DateTimeOffset.UtcNow,
        Who = "test",
    });

    private KilnProcess.Result Release(params string[] extra) => KilnProcess.Run(_store.Path, ["release", "-f", _ctx.Path, "web", .. extra]);

    private JsonElement Status()
    {
        var r = KilnProcess.Run(_store.Path, "release", "status", "--json", "-f", _ctx.Path, "web");
        Assert.True(r.ExitCode == 0, r.All);
        return JsonDocument.Parse(r.Stdout).RootElement.Clone();
    }

    private static bool NamespaceExists(string netns) =>
        ProcessTable.Pids().Any(pid => ProcessTable.Link(pid, "ns/net") == netns);

    /// <summary>Every trace of a set of servers: process, network namespace, veth, instance scratch mount.</summary>
    private static List<string> Remains(IEnumerable<JsonElement> servers)
    {
        var found = new List<string>();
        foreach (var s in servers)
        {
            if (ProcessTable.Alive(s.GetProperty("pid").GetInt32()))
            {
                found.Add($"host process {s.GetProperty("pid")}");
            }
            if (ProcessTable.Alive(s.GetProperty("netPid").GetInt32()))
            {
                found.Add($"instance process {s.GetProperty("netPid")}");
            }
            if (NamespaceExists(s.GetProperty("netns").GetString()!))
            {
                found.Add($"namespace {s.GetProperty("netns")}");
            }
            if (Directory.Exists("/sys/class/net/" + s.GetProperty("veth").GetString()))
            {
                found.Add($"veth {s.GetProperty("veth")}");
            }
        }
        return found;
    }

    [Fact]
    public async Task Blue_green_fails_no_request_a_bad_canary_is_rolled_back_and_a_killed_release_recovers()
    {
        var v1 = Build();
        var refused = Release();
        Assert.True(refused.ExitCode == 1, refused.All);
        Assert.Contains("not promoted to channel 'staging'", refused.Stderr);
        Assert.Contains(v1.ToString(), refused.Stderr);
        await Promote(v1);
        var first = Release();
        Assert.True(first.ExitCode == 0, first.All);

        Version("v2", ok: true);
        var v2 = Build();
        await Promote(v2);
        var blue = Status().GetProperty("servers").EnumerateArray().ToList();
        Assert.Equal(2, blue.Count);
        await using (var load = new LoadGenerator(_port, clients: 4))
        {
            await load.WaitForAsync(50);
            var clock = Stopwatch.StartNew();
            var green = Release();
            Assert.True(green.ExitCode == 0, green.All);
            var mark = load.Mark();
            await load.WaitForAsync(mark + 100);
            var results = load.Results;
            Assert.True(results.All(r => r.Ok), "failed under blue-green: " + string.Join("; ", results.Where(r => !r.Ok).Take(5).Select(r => r.Body)));
            Assert.All(results.Skip(mark), r => Assert.Equal("v2", r.Body));
            Assert.Contains(results.Take(mark), r => r.Body == "v1");
            Console.WriteLine($"blue-green: {results.Count} requests, none failed, release took {clock.Elapsed.TotalSeconds:0.0} s");
        }
        Assert.Empty(Remains(blue));

        // v3 passes its spec (index.html) but fails the CGI the load hits: the first canary step rolls it back.
        _ctx.Write("kiln.yaml", Yaml("canary"));
        Version("v3", ok: false);
        var v3 = Build();
        await Promote(v3);
        await using (var load = new LoadGenerator(_port, clients: 4))
        {
            await load.WaitForAsync(50);
            var mark = load.Mark();
            var canary = Release("--json");
            Assert.True(canary.ExitCode == 1, canary.All);
            Assert.Contains("rolled back", canary.Stderr);
            Assert.Contains("at 10%", canary.Stderr);
            using var doc = JsonDocument.Parse(canary.Stdout);
            long reported = doc.RootElement.GetProperty("failedRequests").GetInt64();
            var after = load.Mark();
            await load.WaitForAsync(after + 100);
            var during = load.Results.Skip(mark).Take(after - mark).ToList();
            int failed = during.Count(r => !r.Ok);
            Assert.True(reported >= 1, canary.All);
            Assert.True(failed >= 1 && failed <= reported + 4, $"{failed} failed at the clients, kiln reported {reported}");
            // Bounded by the step's weight: at 10% a small share of what was sent while the canary ran.
            Assert.True(failed <= Math.Max(10, during.Count * 0.25), $"{failed} of {during.Count} failed");
            Assert.All(load.Results.Skip(after), r => Assert.Equal("v2", r.Body));
            Console.WriteLine($"canary: rolled back, {failed} of {during.Count} requests failed at the clients, {reported} reported");
        }
        var state = Status();
        Assert.Equal(v2.ToString(), state.GetProperty("serving").GetString());
        Assert.Equal(JsonValueKind.Null, state.GetProperty("pending").ValueKind);

        // kill -9 mid-release (instances of v1 booted, nothing switched): status tells it, the next release recovers.
        _ctx.Write("kiln.yaml", Yaml("blue-green"));
        using (var killed = Process.Start(KilnProcess.StartInfo(_store.Path, "release", "-f", _ctx.Path, "web", "--digest", v1.ToString()))!)
        {
            var statePath = Path.Combine(_store.Path, "kiln", "release", "web", "state.json");
            var wait = Stopwatch.StartNew();
            while (!(File.Exists(statePath) && File.ReadAllText(statePath).Split("\"address\"").Length >= 5) && !killed.HasExited && wait.Elapsed < TimeSpan.FromSeconds(60))
            {
                Thread.Sleep(20);
            }
            Assert.False(killed.HasExited, "kiln release ended before it could be killed");
            killed.Kill();
            killed.WaitForExit();
        }
        var interrupted = Status();
        Assert.Equal(v2.ToString(), interrupted.GetProperty("serving").GetString());
        Assert.Equal(v1.ToString(), interrupted.GetProperty("pending").GetString());
        Assert.Contains("interrupted", interrupted.GetProperty("note").GetString());
        var pending = interrupted.GetProperty("servers").EnumerateArray().Where(s => s.GetProperty("set").GetString() == "pending").ToList();
        Assert.NotEmpty(pending);
        // Status is true: what it calls alive is alive.
        Assert.All(interrupted.GetProperty("servers").EnumerateArray(), s => Assert.Equal(ProcessTable.Alive(s.GetProperty("pid").GetInt32()), s.GetProperty("alive").GetBoolean()));
        var again = Release("--digest", v1.ToString());
        Assert.True(again.ExitCode == 0, again.All);
        Assert.Contains("rolling back the interrupted release", again.All);
        var recovered = Status();
        Assert.Equal(v1.ToString(), recovered.GetProperty("serving").GetString());
        Assert.Equal(2, recovered.GetProperty("servers").GetArrayLength());
        // The kernel reuses a namespace's number once it is gone: one the new set holds now is not a leftover.
        var serving = recovered.GetProperty("servers").EnumerateArray().Select(s => s.GetProperty("netns").GetString()).ToHashSet();
        var left = Remains(pending.Where(s => s.TryGetProperty("veth", out var v) && v.ValueKind == JsonValueKind.String))
            .Where(r => !serving.Any(n => r == "namespace " + n)).ToList();
        Assert.Empty(left);

        var stop = KilnProcess.Run(_store.Path, "release", "stop", "-f", _ctx.Path, "web");
        Assert.True(stop.ExitCode == 0, stop.All);
        Leftovers.AssertNone(_store.Path);
    }

    /// <summary>Concurrent clients GETting the CGI through the balancer, each result kept in order.</summary>
    private sealed class LoadGenerator : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly List<Task> _clients = [];
        private readonly List<(bool Ok, string Body)> _results = [];

        public LoadGenerator(int port, int clients)
        {
            for (int i = 0; i < clients; i++)
            {
                _clients.Add(Task.Run(async () =>
                {
                    using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(10) };
                    var url = new Uri($"http://127.0.0.1:{port}/cgi-bin/app");
                    while (!_stop.IsCancellationRequested)
                    {
                        (bool, string) result;
                        try
                        {
                            using var response = await http.GetAsync(url, _stop.Token);
                            var body = (await response.Content.ReadAsStringAsync(_stop.Token)).Trim();
                            result = (response.IsSuccessStatusCode, response.IsSuccessStatusCode ? body : $"{(int)response.StatusCode} {body}");
                        }
                        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
                        {
                            return;
                        }
                        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
                        {
                            result = (false, e.Message);
                        }
                        lock (_results)
                        {
                            _results.Add(result);
                        }
                    }
                }));
            }
        }

        public List<(bool Ok, string Body)> Results
        {
            get
            {
                lock (_results)
                {
                    return [.. _results];
                }
            }
        }

        public int Mark()
        {
            lock (_results)
            {
                return _results.Count;
            }
        }

        public async Task WaitForAsync(int count)
        {
            var clock = Stopwatch.StartNew();
            while (Mark() < count)
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"the load reached only {Mark()} of {count} requests");
                await Task.Delay(20);
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await Task.WhenAll(_clients);
            _stop.Dispose();
        }
    }
}
