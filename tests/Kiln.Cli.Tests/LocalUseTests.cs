using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Kiln.Cli.Tests;

/// <summary>kiln run, kiln run --watch, kiln shell and kiln build --debug on tiny busybox images: the instance is
/// reached through its published port, the shells through a pty (script(1)), and nothing stays afterwards.</summary>
[Trait("Tier", "Slow")]
public sealed class LocalUseTests : IDisposable
{
    private readonly TempDir _store = new("kiln-store");

    public void Dispose() => _store.Dispose();

    private const string Httpd = "    config:\n      cmd: [/bin/busybox, httpd, -f, -p, \"8080\", -h, /www]\n      expose: [8080]\n";

    private static TinyContext Site(string page)
    {
        var ctx = new TinyContext("images:\n  site:\n    from: scratch\n    steps:\n" + TinyContext.RootStep +
            "      - copy: site/\n        to: /www/\n" + Httpd +
            "    test:\n      http: {\"http://127.0.0.1:8080/\": {status: 200, body: [version]}}\n");
        ctx.Write("site/index.html", page);
        return ctx;
    }

    [Fact]
    public async Task Run_publishes_the_port_on_the_host_and_SIGTERM_leaves_nothing()
    {
        using var ctx = Site("version one\n");
        Assert.Equal(0, KilnProcess.Run(_store.Path, "build", ctx.Path).ExitCode);
        int port = FreePort();
        using var kiln = LiveKiln.Start(_store.Path, "run", "site", "-p", $"{port}:8080");
        kiln.WaitFor(l => l.Contains("is running", StringComparison.Ordinal), "the instance to run");
        Assert.Equal("version one\n", await GetAsync(port));
        kiln.Signal("TERM");
        Assert.Equal(130, kiln.WaitForExit());
        Leftovers.AssertNone(_store.Path);
        Assert.False(Listening(port), $"port {port} still listens");
    }

    [Fact]
    public async Task Run_watch_serves_an_edited_site_and_keeps_the_old_instance_when_checks_fail()
    {
        using var ctx = Site("version one\n");
        int port = FreePort();
        using var kiln = LiveKiln.Start(_store.Path, "run", "site", "--watch", "-f", ctx.Path, "-p", $"{port}:8080");
        kiln.WaitFor(l => l.Contains("started site", StringComparison.Ordinal), "the first build and start");
        Assert.Equal("version one\n", await GetAsync(port));

        ctx.Write("site/index.html", "version two\n");
        var line = kiln.WaitFor(l => l.Contains("site/index.html", StringComparison.Ordinal), "a build after the edit");
        Assert.Contains("restarted site", line);
        Assert.Contains("1 checks passed, 0 failed", line);
        Assert.Equal("version two\n", await GetAsync(port));

        ctx.Write("site/index.html", "broken\n"); // the spec wants "version" in the body
        line = kiln.WaitFor(l => l.Contains("FAILED", StringComparison.Ordinal) && l.Contains("site/index.html", StringComparison.Ordinal), "a failing build");
        Assert.Contains("0 checks passed, 1 failed", line);
        Assert.Contains("keeps serving", line);
        Assert.Equal("version two\n", await GetAsync(port));

        kiln.Signal("TERM");
        Assert.Equal(130, kiln.WaitForExit());
        Leftovers.AssertNone(_store.Path);
        Assert.False(Listening(port), $"port {port} still listens");
    }

    [Fact]
    public void Shell_runs_commands_on_a_terminal_and_nothing_it_writes_reaches_the_image()
    {
        using var ctx = new TinyContext("images:\n  tiny:\n    from: scratch\n    steps:\n" + TinyContext.RootStep);
        Assert.Equal(0, KilnProcess.Run(_store.Path, "build", ctx.Path).ExitCode);
        var first = OnTerminal("echo made-$((6*7)) > /etc/made-by-shell; cat /etc/made-by-shell; test -t 0 && echo on-a-tty; exit 3\n", "shell", "tiny");
        Assert.True(first.ExitCode == 3, first.Output);
        Assert.Contains("made-42", first.Output);
        Assert.Contains("on-a-tty", first.Output);
        var second = OnTerminal("test -e /etc/made-by-shell && echo FOUND || echo ABS''ENT; exit\n", "shell", "tiny");
        Assert.Contains("ABSENT", second.Output);
        Assert.Equal(0, second.ExitCode);
        Leftovers.AssertNone(_store.Path);
        Assert.Equal(2, KilnProcess.Run(_store.Path, "shell", "nosuch").ExitCode);
    }

    [Fact]
    public void Build_debug_opens_a_shell_in_the_failed_steps_tree_and_the_build_still_fails()
    {
        using var ctx = new TinyContext("images:\n  bad:\n    from: scratch\n    steps:\n" + TinyContext.RootStep +
            "      - env: {STEPVAR: from-the-step}\n" +
            "      - run: touch /etc/kept /etc/gone\n" +
            "      - run: mkdir -p /work && echo partial > /work/half.txt && rm /etc/gone && exit 7\n");
        var r = OnTerminal("cat /work/half.txt; echo \"var=$STEPVAR\"; echo \"etc=$(ls /etc | tr '\\n' ,)\"; echo x > /work/more; exit\n",
            "build", "--debug", ctx.Path);
        Assert.True(r.ExitCode == 1, r.Output);
        Assert.Contains("a shell opens in its tree", r.Output);
        Assert.Contains("partial", r.Output);
        Assert.Contains("var=from-the-step", r.Output);
        // The step removed /etc/gone: a whiteout in its partial layer, which the shell's tree honours.
        Assert.Contains("etc=kept,", r.Output);
        Assert.Contains("failed with exit status 7", r.Output);
        Leftovers.AssertNone(_store.Path);

        // Without a terminal: said so, and the build fails as it would.
        var plain = KilnProcess.Run(_store.Path, "build", "--debug", ctx.Path);
        Assert.Equal(1, plain.ExitCode);
        Assert.Contains("no terminal", plain.Stderr);
    }

    /// <summary>Runs kiln on a pty (script(1)), typing <paramref name="input"/>; returns its exit status and everything
    /// the terminal showed.</summary>
    private (int ExitCode, string Output) OnTerminal(string input, params string[] args)
    {
        var kiln = KilnProcess.StartInfo(_store.Path, args);
        var command = string.Join(' ', new[] { kiln.FileName }.Concat(kiln.ArgumentList).Select(a => "'" + a.Replace("'", "'\\''", StringComparison.Ordinal) + "'"));
        var psi = new ProcessStartInfo("script")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "-qfec", command, "/dev/null" })
        {
            psi.ArgumentList.Add(a);
        }
        foreach (var (k, v) in kiln.Environment)
        {
            psi.Environment[k] = v;
        }
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.StandardInput.Write(input);
        p.StandardInput.Close();
        if (!p.WaitForExit(TimeSpan.FromSeconds(120)))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail("kiln on a terminal did not finish in 120 s: " + stdout.Result);
        }
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    internal static int FreePort()
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    }

    internal static bool Listening(int port)
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            s.Connect(IPAddress.Loopback, port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    internal static async Task<string> GetAsync(int port)
    {
        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(10) };
        return await client.GetStringAsync(new Uri($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}/"));
    }

    /// <summary>A kiln that runs until stopped: its output lines as they come.</summary>
    internal sealed class LiveKiln : IDisposable
    {
        private readonly Process _process;
        private readonly List<string> _lines = [];
        private readonly StringBuilder _all = new();

        private LiveKiln(Process process) => _process = process;

        public static LiveKiln Start(string store, params string[] args)
        {
            var psi = KilnProcess.StartInfo(store, args);
            var kiln = new LiveKiln(new Process { StartInfo = psi });
            kiln._process.OutputDataReceived += (_, e) => kiln.Add(e.Data);
            kiln._process.ErrorDataReceived += (_, e) => kiln.Add(e.Data);
            kiln._process.Start();
            kiln._process.StandardInput.Close();
            kiln._process.BeginOutputReadLine();
            kiln._process.BeginErrorReadLine();
            return kiln;
        }

        private void Add(string? line)
        {
            if (line is null)
            {
                return;
            }
            lock (_lines)
            {
                _lines.Add(line);
                _all.AppendLine(line);
                Monitor.PulseAll(_lines);
            }
        }

        /// <summary>The first line not yet taken that matches; fails with the output after 60 s.</summary>
        public string WaitFor(Func<string, bool> match, string what)
        {
            var deadline = Stopwatch.StartNew();
            lock (_lines)
            {
                while (true)
                {
                    int i = _lines.FindIndex(l => match(l));
                    if (i >= 0)
                    {
                        var line = _lines[i];
                        _lines.RemoveRange(0, i + 1);
                        return line;
                    }
                    if (deadline.Elapsed > TimeSpan.FromSeconds(60) || _process.HasExited)
                    {
                        Assert.Fail($"waited in vain for {what}; kiln said:\n{_all}");
                    }
                    Monitor.Wait(_lines, 200);
                }
            }
        }

        public void Signal(string signal) =>
            Assert.Equal(0, KilnProcess.Tool("kill", "-" + signal, _process.Id.ToString(CultureInfo.InvariantCulture)).ExitCode);

        public int WaitForExit()
        {
            Assert.True(_process.WaitForExit(TimeSpan.FromSeconds(30)), "kiln did not stop:\n" + _all);
            _process.WaitForExit();
            return _process.ExitCode;
        }

        public void Dispose()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit();
            }
            _process.Dispose();
        }
    }
}
