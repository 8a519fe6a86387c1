using System.Diagnostics;
using System.Net;
using System.Net.Http;
using System.Net.Sockets;
using System.Text;
using Kiln.Build.Execution;
using Kiln.Build.Sandbox;
using Kiln.Build.Store;

namespace Kiln.Build.Testing.Boot;

/// <summary>A running instance of an image: its entrypoint/cmd as PID 1 of new pid, mount, uts, ipc and
/// network namespaces (loopback only), on a throwaway overlay of the image's snapshots. Checks reach it
/// through its namespaces; disposing it stops it and removes everything it made.</summary>
public sealed class Instance : IAsyncDisposable
{
    private const int OutputLines = 200;

    /// <summary>The image's shell (nsenter -r enters the image's root first), not the host's.</summary>
    private const string ImageShell = "/bin/sh";

    private readonly KilnStore _store;
    private readonly string _scratch;
    private readonly InstanceOptions _options;
    private readonly CancellationTokenSource _kill = new();
    private readonly OutputTail _output = new(OutputLines);
    private readonly IReadOnlyList<KeyValuePair<string, string>> _environment;
    private SandboxRun? _run;
    private ListeningSockets? _listening;
    private readonly Lock _listeningGate = new();
    private int _initPid; // the instance's first process in the image, once known (see WaitForInitAsync)
    private int _netPid; // a process in the instance's network namespace
    private bool _disposed;

    private Instance(KilnStore store, string scratch, InstanceOptions options, IReadOnlyList<KeyValuePair<string, string>> environment)
    {
        _store = store;
        _scratch = scratch;
        _options = options;
        _environment = environment;
    }

    /// <summary>The last lines the instance wrote (stdout and stderr).</summary>
    public string Output
    {
        get
        {
            return string.Join(Environment.NewLine, _output.Lines);
        }
    }

    /// <summary>The host pid of a process in the instance's namespaces (its PID 1, or under systemd its container's
    /// init).</summary>
    public int Pid => _netPid;

    public static async Task<Instance> StartAsync(KilnStore store, ImageState image, InstanceOptions options, CancellationToken ct = default)
    {
        var config = image.Config.Config;
        List<string> argv = options.Systemd
            ? ["/sbin/init"]
            : [.. config.Entrypoint ?? [], .. options.Cmd ?? config.Cmd ?? []];
        if (argv.Count == 0)
        {
            throw new InstanceException("the image has no entrypoint or cmd to start (set config.cmd, or boot: systemd)");
        }
        // An image pulled, or built from remote cache hits, has its layers extracted when first run.
        await store.Snapshots.EnsureAsync(image, ct: ct).ConfigureAwait(false);
        var environment = ConfigMerge.ImageEnvironment(config, [], []);
        var (scratch, _) = ScratchSpace.CreateTempDir(store, "instance", options.MemoryScratchSize);
        var instance = new Instance(store, scratch, options, environment);
        try
        {
            var spec = new SandboxSpec
            {
                LowerDirsTopFirst = LayerCommit.LowerDirs(store, image),
                UpperDir = Path.Combine(scratch, "upper"),
                ScratchDir = Path.Combine(scratch, "sandbox"),
                Command = argv,
                Environment = environment,
                WorkingDirectory = options.Systemd || config.WorkingDir is not { Length: > 0 } ? "/" : config.WorkingDir,
                User = options.Systemd ? null : config.User,
                HostNetwork = false,
                ResolvConf = false,
                PolicyRcD = false,
                Hostname = "kiln-instance",
                Launcher = options.Systemd ? SandboxLauncher.Nspawn : SandboxLauncher.Chroot,
                Recorder = options.Recorder,
            };
            foreach (var (path, bytes) in options.Files)
            {
                if (!path.StartsWith('/') || path.Split('/').Contains(".."))
                {
                    throw new ArgumentException($"instance file '{path}' is not an absolute path inside the image", nameof(options));
                }
                // The upper dir is new and empty: nothing in it can redirect these writes.
                var target = Path.Combine(spec.UpperDir, path.TrimStart('/'));
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                await File.WriteAllBytesAsync(target, bytes, ct).ConfigureAwait(false);
                File.SetUnixFileMode(target, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }
            try
            {
                instance._run = await Sandbox.Sandbox.StartAsync(spec, instance.OnLine, instance._kill.Token).ConfigureAwait(false);
            }
            catch (SandboxException e)
            {
                throw new InstanceException($"the instance could not be set up: {e.Message}", "", e);
            }
            if (options.Systemd)
            {
                // systemd-nspawn gives the container a network namespace of its own: the container's init is in it.
                await instance.WaitForInitAsync(ct).ConfigureAwait(false);
                instance._netPid = instance._initPid;
            }
            else
            {
                // PID 1 (kiln's child) has been in the sandbox's network namespace from its start: ports and HTTP can be
                // checked at once. A command waits for it to have entered the image (ExecAsync).
                instance._netPid = instance._run.Child.Pid;
            }
            return instance;
        }
        catch
        {
            await instance.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private void OnLine(string line)
    {
        _output.Add(line);
        _options.Output?.Invoke(line);
    }

    /// <summary>Completes with the instance's exit status once its first process has exited (or is cancelled when the
    /// instance was stopped); an instance that never started counts as exited.</summary>
    public Task<int> Exited => _run?.Child.Exited ?? Task.FromResult(-1);

    private async Task WaitForInitAsync(CancellationToken ct)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            ThrowIfExited();
            // Ready once PID 1 has chrooted into the image: before that it is the setup script on the host's root,
            // and nothing may enter it.
            if (_run!.InitPid is { } pid && InImage(pid) is int init)
            {
                _initPid = init;
                return;
            }
            if (deadline.Elapsed > _options.StartTimeout)
            {
                throw new InstanceException($"the instance did not start within {_options.StartTimeout.TotalSeconds:0} s", Output);
            }
            await Task.Delay(PollInterval(deadline.Elapsed), ct).ConfigureAwait(false);
        }
    }

    private string MergedDir => Path.Combine(_scratch, "sandbox", "merged");

    /// <summary>The instance's first process in the image: PID 1 itself, or its child where PID 1 stays outside (the
    /// container's init under systemd-nspawn, or the command of an image with a user under kiln-sandbox-exec's waiting
    /// init); null until it is there.</summary>
    private int? InImage(int pid)
    {
        if (!_options.Systemd && IsInImage(pid))
        {
            return pid;
        }
        return ContainerInit(pid) is int child && IsInImage(child) ? child : null;
    }

    private bool IsInImage(int pid)
    {
        try
        {
            if (_options.Systemd)
            {
                // systemd-nspawn pivots the container into the image root: its init has a mount namespace
                // of its own and runs systemd.
                return File.ReadAllText($"/proc/{pid}/comm").Trim() == "systemd"
                    && File.ResolveLinkTarget($"/proc/{pid}/ns/mnt", false)?.FullName != File.ResolveLinkTarget($"/proc/{_run!.InitPid}/ns/mnt", false)?.FullName;
            }
            return File.ResolveLinkTarget($"/proc/{pid}/root", returnFinalTarget: false)?.FullName == MergedDir;
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>The container's init: the child of systemd-nspawn.</summary>
    private static int? ContainerInit(int nspawnPid)
    {
        try
        {
            var children = File.ReadAllText($"/proc/{nspawnPid}/task/{nspawnPid}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return children.Length > 0 && int.TryParse(children[0], out var pid) ? pid : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    private void ThrowIfExited()
    {
        if (_run!.Child.Exited.IsCompleted)
        {
            var status = _run.Child.Exited.IsCompletedSuccessfully ? _run.Child.Exited.Result : -1;
            throw new InstanceException($"the instance exited (status {status}) before it was ready", Output);
        }
    }

    /// <summary>Waits until every port listens inside the instance; throws with the instance's output on timeout
    /// or when the instance exits.</summary>
    public async Task WaitForPortsAsync(IReadOnlyList<(string Protocol, int Port)> ports, TimeSpan timeout, CancellationToken ct = default)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            ThrowIfExited();
            var listening = await ListeningAsync().ConfigureAwait(false);
            var waiting = ports.Where(p => !listening.IsListening(p.Protocol, p.Port)).ToList();
            if (waiting.Count == 0)
            {
                return;
            }
            if (clock.Elapsed > timeout)
            {
                throw new InstanceException(
                    $"timed out after {timeout.TotalSeconds:0.#} s waiting for {string.Join(", ", waiting.Select(p => $"{p.Protocol}:{p.Port}"))} to listen", Output);
            }
            await Task.Delay(PollInterval(clock.Elapsed), ct).ConfigureAwait(false);
        }
    }

    /// <summary>Every millisecond for the first 100 ms, every 5 ms up to a second, then every 10 ms: a service that
    /// is up within milliseconds (nginx: about 12 ms) is seen at once, and a slow one (a systemd boot) costs a
    /// read of /proc every 10 ms.</summary>
    private static TimeSpan PollInterval(TimeSpan waited) =>
        TimeSpan.FromMilliseconds(waited.TotalMilliseconds < 100 ? 1 : waited.TotalSeconds < 1 ? 5 : 10);

    public async Task<bool> IsListeningAsync(string protocol, int port, CancellationToken ct = default) =>
        (await ListeningAsync().ConfigureAwait(false)).IsListening(protocol, port);

    /// <summary>The instance's sock_diag socket, opened on first use. Opening it enters the namespace through PID 1:
    /// when PID 1 has just exited, that fails, and the error to report is the exit, with the instance's output.</summary>
    private async Task<ListeningSockets> ListeningAsync()
    {
        try
        {
            lock (_listeningGate)
            {
                return _listening ??= NetworkNamespace.OpenListeningSockets(_netPid);
            }
        }
        catch (InstanceException)
        {
            await Task.WhenAny(_run!.Child.Exited, Task.Delay(TimeSpan.FromSeconds(1))).ConfigureAwait(false);
            ThrowIfExited();
            throw;
        }
    }

    /// <summary>Does the one-time work of a process's first HTTP check (setting up the HTTP stack) ahead of need, over a
    /// connection in memory, then starts the socket engine's thread. Started alongside the steps when a spec has http
    /// checks; a first GET on loopback then took 0.4 ms instead of 0.9-1.0 (NativeAOT, 3 runs each). Only time is at
    /// stake: it never throws.</summary>
    public static async Task PrewarmHttpAsync()
    {
        try
        {
            using var handler = new SocketsHttpHandler
            {
                UseProxy = false,
                AllowAutoRedirect = false,
                ConnectCallback = (_, _) => ValueTask.FromResult<Stream>(new CannedResponse()),
            };
            using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(5) };
            using var response = await client.GetAsync(new Uri("http://127.0.0.1/"), CancellationToken.None).ConfigureAwait(false);
            _ = await response.Content.ReadAsStringAsync(CancellationToken.None).ConfigureAwait(false);
            _ = response.Headers.Concat(response.Content.Headers).Count();
            // The runtime's socket engine thread (made on a socket's first wait, as a check's connect would): an accept
            // and a connect over loopback, in kiln's own network namespace.
            using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            listener.Listen(1);
            var accepting = listener.AcceptAsync();
            using var connecting = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await connecting.ConnectAsync(listener.LocalEndPoint!).ConfigureAwait(false);
            using var accepted = await accepting.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // a first real check then does the set-up itself
        }
    }

    /// <summary>A connection that reads as one small HTTP response and takes any request.</summary>
    private sealed class CannedResponse : Stream
    {
        private readonly MemoryStream _response = new("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"u8.ToArray());

        public override bool CanRead => true;
        public override bool CanWrite => true;
        public override bool CanSeek => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => _response.Read(buffer, offset, count);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) { }
    }

    /// <summary>An HTTP GET made from inside the instance's network namespace.</summary>
    public async Task<HttpResult> HttpGetAsync(Uri url, TimeSpan timeout, CancellationToken ct = default)
    {
        var address = url.Host is "localhost" ? IPAddress.Loopback
            : IPAddress.TryParse(url.Host.Trim('[', ']'), out var parsed) ? parsed
            : throw new InstanceException($"'{url.Host}' is not an address inside the instance; use 127.0.0.1 or localhost");
        int pid = _netPid;
        using var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            ConnectCallback = async (context, token) =>
                new NetworkStream(await NetworkNamespace.ConnectTcpAsync(pid, address, context.DnsEndPoint.Port, token).ConfigureAwait(false), ownsSocket: true),
        };
        using var client = new HttpClient(handler) { Timeout = timeout };
        using var response = await client.GetAsync(url, ct).ConfigureAwait(false);
        var body = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, values) in response.Headers.Concat(response.Content.Headers))
        {
            headers[name] = string.Join(", ", values);
        }
        return new HttpResult((int)response.StatusCode, headers, body);
    }

    /// <summary>Runs <c>/bin/sh -c COMMAND</c> inside the instance's namespaces and root.</summary>
    public async Task<CommandResult> ExecAsync(string command, TimeSpan timeout, CancellationToken ct = default)
    {
        ThrowIfExited();
        if (_initPid == 0)
        {
            await WaitForInitAsync(ct).ConfigureAwait(false);
        }
        if (!IsInImage(_initPid))
        {
            throw new InstanceException("the instance's PID 1 is not inside the image root; refusing to run a command", Output);
        }
        var psi = new ProcessStartInfo(HostPrograms.Nsenter.Name)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        psi.Environment.Clear();
        foreach (var (k, v) in _environment)
        {
            psi.Environment[k] = v;
        }
        foreach (var a in new[] { "-t", _initPid.ToString(System.Globalization.CultureInfo.InvariantCulture), "-m", "-u", "-i", "-n", "-p", "-r", "-w", "--", ImageShell, "-c", command })
        {
            psi.ArgumentList.Add(a);
        }
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        using var process = new Process { StartInfo = psi };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (stdout) { stdout.AppendLine(e.Data); } } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (stderr) { stderr.AppendLine(e.Data); } } };
        InheritedDescriptors.CloseOnExec();
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(timeout);
        bool timedOut = false;
        try
        {
            await process.WaitForExitAsync(limit.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            timedOut = !ct.IsCancellationRequested;
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
            }
            await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            ct.ThrowIfCancellationRequested();
        }
        process.WaitForExit();
        return new CommandResult(timedOut ? -1 : process.ExitCode, stdout.ToString(), stderr.ToString(), timedOut);
    }

    /// <summary>Stops the instance (killed at once; a systemd instance gets SIGTERM and the stop timeout first) and
    /// removes its files.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        if (_run is not null)
        {
            // A throwaway instance has nothing to save: killing its namespace is enough, and a graceful stop only
            // costs time (nginx: about 5 ms of a 50 ms rebuild). Except under systemd-nspawn, which must power the
            // container off itself (SIGTERM) to remove what it set up outside the namespace, such as its cgroups.
            if (_options.Systemd && _run.InitPid is { } nspawn && !_run.Child.Exited.IsCompleted && Handles(nspawn, 15))
            {
                _ = Kill(nspawn, 15);
                await Task.WhenAny(_run.Child.Exited, Task.Delay(_options.StopTimeout)).ConfigureAwait(false);
            }
            else if (_netPid > 0 && !_run.Child.Exited.IsCompleted)
            {
                if (_options.GracefulStop && Handles(_netPid, 15))
                {
                    // A server someone used by hand may have state to finish; PID 1 ignores a SIGTERM it does not handle.
                    _ = Kill(_netPid, 15);
                    await Task.WhenAny(_run.Child.Exited, Task.Delay(_options.StopTimeout)).ConfigureAwait(false);
                }
                // SIGKILL to the namespace's PID 1 (or, under systemd-nspawn, its container's init) ends every process
                // in it: quicker than looking for the process tree to kill (below, the fallback).
                if (!_run.Child.Exited.IsCompleted)
                {
                    _ = Kill(_netPid, 9);
                    await Task.WhenAny(_run.Child.Exited, Task.Delay(_options.StopTimeout)).ConfigureAwait(false);
                }
            }
            await _kill.CancelAsync().ConfigureAwait(false);
            try
            {
                await _run.Child.Exited.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }
        _kill.Dispose();
        _listening?.Dispose();
        _store.DeleteTempDir(_scratch);
    }

    private static bool Handles(int pid, int signal)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("SigCgt:", StringComparison.Ordinal))
                {
                    var mask = ulong.Parse(line["SigCgt:".Length..].Trim(), System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);
                    return (mask & (1UL << (signal - 1))) != 0;
                }
            }
        }
        catch (IOException)
        {
        }
        return false;
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill")]
    private static extern int Kill(int pid, int signal);
}
