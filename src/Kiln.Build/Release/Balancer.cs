using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Kiln.Build.Sandbox;

namespace Kiln.Build.Release;

/// <summary>A server as the balancer's config names it.</summary>
internal sealed record BalancerServer(string Name, string Address, int Weight, bool Enabled);

/// <summary>One server's line of <c>show stat</c>: its health, weight, open sessions and answer counts.</summary>
public sealed record ServerStat(string Name, string Status, int Weight, long Sessions, long Responses, long Errors5xx, long ConnectionErrors, long ResponseErrors)
{
    /// <summary>Requests that reached it (every answer, and the attempts that failed without one).</summary>
    public long Requests => Responses + ConnectionErrors + ResponseErrors;
    public long Failed => Errors5xx + ConnectionErrors + ResponseErrors;
}

/// <summary>A target's HAProxy (Debian's haproxy, 2.6): its config written by Kiln, run in master-worker mode and
/// daemonised so it outlives the command, reloaded with SIGUSR2 to its master (the new worker takes the listening
/// sockets over the runtime socket, expose-fd listeners, so no connection is refused meanwhile), and driven through
/// its runtime API on a unix socket in the target's folder.</summary>
internal sealed class Balancer
{
    public const string Backend = "serving";
    public const int FullWeight = 100;

    private readonly string _dir;
    private readonly string _target;
    private readonly IPEndPoint _listen;

    public Balancer(string dir, string target, IPEndPoint listen)
    {
        _dir = dir;
        _target = target;
        _listen = listen;
    }

    public string ConfigPath => Path.Combine(_dir, "haproxy.cfg");
    public string SocketPath => Path.Combine(_dir, "admin.sock");
    private string PidPath => Path.Combine(_dir, "haproxy.pid");
    private string LogPath => Path.Combine(_dir, "haproxy.log");

    internal string Config(IEnumerable<BalancerServer> servers)
    {
        var s = new StringBuilder();
        s.Append(CultureInfo.InvariantCulture, $"""
            # Written by kiln for release target {_target}; kiln rewrites it on every change.
            global
                master-worker
                pidfile {PidPath}
                stats socket {SocketPath} mode 600 level admin expose-fd listeners
                stats timeout 10s
                hard-stop-after 60s

            defaults
                mode http
                timeout connect 1s
                timeout client 30s
                timeout server 30s
                timeout http-keep-alive 10s
                # A request whose server refused it, or closed without answering, goes to another server: what a
                # switch or a stopped server may cause, and the client never sees.
                retries 3
                option redispatch 1
                retry-on conn-failure empty-response
                # A reload (each release reloads twice) closes the old worker's idle client connections, and a
                # client that sends its next request at that moment gets no answer. With this, the old worker waits
                # for that request and answers it with Connection: close instead.
                option idle-close-on-response
                default-server inter 300ms fall 2 rise 1

            frontend {_target}
                bind {Endpoint(_listen)}
                default_backend {Backend}

            backend {Backend}
                balance roundrobin

            """);
        foreach (var server in servers)
        {
            s.Append(CultureInfo.InvariantCulture, $"    server {server.Name} {server.Address} weight {server.Weight} check{(server.Enabled ? "" : " disabled")}\n");
        }
        return s.ToString();
    }

    private static string Endpoint(IPEndPoint ep) => ep.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{ep.Address}]:{ep.Port}" : ep.ToString();

    /// <summary>The master's pid and start time while it runs, else null.</summary>
    public (int Pid, ulong Start)? Running(int pid, ulong start) => ProcessIdentity.Alive(pid, start) ? (pid, start) : null;

    /// <summary>Writes the config for <paramref name="servers"/> and makes HAProxy serve it: reloads the running
    /// master (<paramref name="pid"/>), or starts one. Returns the master's pid and start time.</summary>
    public async Task<(int Pid, ulong Start)> ApplyAsync(IEnumerable<BalancerServer> servers, int pid, ulong start, CancellationToken ct)
    {
        Directory.CreateDirectory(_dir);
        var text = Config(servers);
        var candidate = ConfigPath + ".new";
        await File.WriteAllTextAsync(candidate, text, ct).ConfigureAwait(false);
        var check = await RunAsync([HostPrograms.Resolve(HostPrograms.Haproxy), "-c", "-q", "-f", candidate], ct).ConfigureAwait(false);
        if (check.ExitCode != 0)
        {
            throw ReleaseException.Balancer($"HAProxy refused the config kiln wrote ({candidate}): {check.Output.Trim()}");
        }
        File.Move(candidate, ConfigPath, overwrite: true);
        if (ProcessIdentity.Alive(pid, start))
        {
            var before = await WorkerPidAsync(ct).ConfigureAwait(false);
            ProcessIdentity.Signal(pid, start, 12); // SIGUSR2: reload
            await WaitForWorkerAsync(w => w != before, ct).ConfigureAwait(false);
            return (pid, start);
        }
        File.Delete(PidPath);
        var run = await RunAsync([HostPrograms.Sh.Name, "-c", "exec \"$@\" </dev/null >/dev/null 2>>\"$0\"", LogPath,
            HostPrograms.Resolve(HostPrograms.Haproxy), "-W", "-D", "-f", ConfigPath, "-p", PidPath], ct).ConfigureAwait(false);
        if (run.ExitCode != 0 || !File.Exists(PidPath))
        {
            throw ReleaseException.Balancer($"HAProxy did not start (exit {run.ExitCode}); see {LogPath}: {Tail(LogPath)}");
        }
        // The pid file lists the master first.
        var master = int.Parse(File.ReadLines(PidPath).First().Trim(), CultureInfo.InvariantCulture);
        var masterStart = ProcessIdentity.StartTime(master) ?? throw ReleaseException.Balancer($"HAProxy's master ({master}) exited at once; see {LogPath}: {Tail(LogPath)}");
        await WaitForWorkerAsync(_ => true, ct).ConfigureAwait(false);
        return (master, masterStart);
    }

    private static string Tail(string path) =>
        File.Exists(path) ? string.Join(" | ", File.ReadLines(path).TakeLast(5)) : "(no log)";

    private async Task<int?> WorkerPidAsync(CancellationToken ct)
    {
        try
        {
            var info = await CommandAsync("show info", ct).ConfigureAwait(false);
            var line = info.Split('\n').FirstOrDefault(l => l.StartsWith("Pid:", StringComparison.Ordinal));
            return line is null ? null : int.Parse(line[4..].Trim(), CultureInfo.InvariantCulture);
        }
        catch (ReleaseException)
        {
            return null;
        }
    }

    private async Task WaitForWorkerAsync(Func<int?, bool> isNew, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var worker = await WorkerPidAsync(ct).ConfigureAwait(false);
            if (worker is not null && isNew(worker))
            {
                return;
            }
            if (clock.Elapsed > TimeSpan.FromSeconds(15))
            {
                throw ReleaseException.Balancer($"no new HAProxy worker answered on {SocketPath} within 15 s; see {LogPath}: {Tail(LogPath)}");
            }
            await Task.Delay(20, ct).ConfigureAwait(false);
        }
    }

    /// <summary>One runtime API command (the socket answers and closes).</summary>
    public async Task<string> CommandAsync(string command, CancellationToken ct)
    {
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(SocketPath), ct).ConfigureAwait(false);
            await socket.SendAsync(Encoding.ASCII.GetBytes(command + "\n"), ct).ConfigureAwait(false);
            var answer = new MemoryStream();
            var buffer = new byte[16384];
            int n;
            while ((n = await socket.ReceiveAsync(buffer, ct).ConfigureAwait(false)) > 0)
            {
                answer.Write(buffer, 0, n);
            }
            return Encoding.UTF8.GetString(answer.ToArray());
        }
        catch (SocketException e)
        {
            throw ReleaseException.Balancer($"its runtime socket {SocketPath} does not answer: {e.Message}", e);
        }
    }

    /// <summary>A runtime command that changes something: HAProxy answers an empty line when it took it.</summary>
    public async Task SetAsync(string command, CancellationToken ct)
    {
        var answer = (await CommandAsync(command, ct).ConfigureAwait(false)).Trim();
        if (answer.Length > 0)
        {
            throw ReleaseException.Balancer($"'{command}' was refused: {answer}");
        }
    }

    public Task SetWeightAsync(string server, int weight, CancellationToken ct) =>
        SetAsync($"set server {Backend}/{server} weight {weight.ToString(CultureInfo.InvariantCulture)}", ct);

    /// <summary><paramref name="state"/>: ready, drain or maint.</summary>
    public Task SetStateAsync(string server, string state, CancellationToken ct) => SetAsync($"set server {Backend}/{server} state {state}", ct);

    /// <summary>The backend's servers as <c>show stat</c> reports them.</summary>
    public async Task<IReadOnlyList<ServerStat>> StatsAsync(CancellationToken ct) =>
        ParseStats(await CommandAsync("show stat", ct).ConfigureAwait(false));

    internal static IReadOnlyList<ServerStat> ParseStats(string csv)
    {
        var lines = csv.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        if (lines.Length == 0 || !lines[0].StartsWith("# ", StringComparison.Ordinal))
        {
            throw ReleaseException.Balancer($"'show stat' answered no CSV: {csv.Trim()}");
        }
        var header = lines[0][2..].Split(',');
        int Col(string name) => Array.IndexOf(header, name) is var i and >= 0 ? i : throw ReleaseException.Balancer($"'show stat' has no column {name}");
        var (px, sv, status, weight, scur, econ, eresp) = (Col("pxname"), Col("svname"), Col("status"), Col("weight"), Col("scur"), Col("econ"), Col("eresp"));
        int[] hrsp = [Col("hrsp_1xx"), Col("hrsp_2xx"), Col("hrsp_3xx"), Col("hrsp_4xx"), Col("hrsp_5xx"), Col("hrsp_other")];
        var result = new List<ServerStat>();
        foreach (var line in lines.Skip(1))
        {
            var f = line.Split(',');
            if (f.Length < header.Length || f[px] != Backend || f[sv] is "BACKEND" or "FRONTEND")
            {
                continue;
            }
            long N(int i) => long.TryParse(f[i], NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : 0;
            result.Add(new ServerStat(f[sv], f[status], (int)N(weight), N(scur), hrsp.Sum(N), N(hrsp[4]), N(econ), N(eresp)));
        }
        return result;
    }

    /// <summary>Stops HAProxy (its master, and with it the workers) and removes its files.</summary>
    public async Task StopAsync(int pid, ulong start)
    {
        await ProcessIdentity.StopAsync(pid, start, TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        foreach (var f in new[] { SocketPath, PidPath, ConfigPath, ConfigPath + ".new" })
        {
            File.Delete(f);
        }
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(IReadOnlyList<string> argv, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(argv[0]) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in argv.Skip(1))
        {
            psi.ArgumentList.Add(a);
        }
        InheritedDescriptors.CloseOnExec();
        using var p = Process.Start(psi)!;
        p.StandardInput.Close();
        var output = p.StandardOutput.ReadToEndAsync(ct);
        var error = p.StandardError.ReadToEndAsync(ct);
        await p.WaitForExitAsync(ct).ConfigureAwait(false);
        return (p.ExitCode, await output.ConfigureAwait(false) + await error.ConfigureAwait(false));
    }
}
