using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using System.Threading.Channels;
using Kiln.Build.Sandbox;

namespace Kiln.Build.Testing.Vm;

/// <summary>How qemu is started: the disk, where logs go, the names of its sockets, and the forwarded ports.</summary>
internal sealed record QemuLaunch
{
    public required string Disk { get; init; }
    public required string ConsoleLog { get; init; }
    /// <summary>Abstract unix socket names (no file to clean up; never longer than a socket path may be).</summary>
    public required string ResultsSocket { get; init; }
    public required string QmpSocket { get; init; }
    public required VmAccelerator Accelerator { get; init; }
    public int MemoryMiB { get; init; } = 1024;
    public int Cpus { get; init; } = 2;
    /// <summary>Host port on 127.0.0.1 → guest port (TCP).</summary>
    public IReadOnlyList<(int Host, int Guest)> Forwards { get; init; } = [];
    /// <summary>Read-only raw drives after the disk (e.g. a cloud-init seed ISO).</summary>
    public IReadOnlyList<string> ExtraDrives { get; init; } = [];
}

/// <summary>A qemu process running the guest: serial console to a file, the results port (ttyS1) on a socket we
/// hold, QMP on another. It runs under <c>setpriv --pdeathsig KILL</c>, so it dies with us; disposing kills it.</summary>
internal sealed partial class QemuMachine : IAsyncDisposable
{
    private readonly RunningChild _child;
    private readonly OutputTail _output;
    private readonly QemuLaunch _launch;
    private readonly CancellationTokenSource _kill = new();
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();
    private Socket? _results;
    private Task? _reader;

    private QemuMachine(QemuLaunch launch, RunningChild child, OutputTail output)
    {
        _launch = launch;
        _child = child;
        _output = output;
    }

    public static IReadOnlyList<string> Arguments(QemuLaunch l)
    {
        var hostfwd = string.Concat(l.Forwards.Select(f => string.Create(CultureInfo.InvariantCulture, $",hostfwd=tcp:127.0.0.1:{f.Host}-:{f.Guest}")));
        return
        [
            "-nodefaults", "-no-user-config", "-no-reboot", "-display", "none",
            .. l.Accelerator == VmAccelerator.Kvm ? (string[])["-accel", "kvm", "-cpu", "host"] : ["-accel", "tcg"],
            "-m", l.MemoryMiB.ToString(CultureInfo.InvariantCulture),
            "-smp", l.Cpus.ToString(CultureInfo.InvariantCulture),
            "-drive", $"file={Escape(l.Disk)},format=raw,if=virtio,cache=unsafe",
            .. l.ExtraDrives.SelectMany(d => (string[])["-drive", $"file={Escape(d)},format=raw,if=virtio,readonly=on"]),
            "-netdev", "user,id=net0" + hostfwd,
            "-device", "virtio-net-pci,netdev=net0",
            // Entropy from the host (qemu's built-in backend): under TCG a guest left to gather its own can block
            // in getrandom for minutes.
            "-device", "virtio-rng-pci",
            "-chardev", $"file,id=console,path={Escape(l.ConsoleLog)}",
            "-serial", "chardev:console",
            // wait=on: qemu starts the guest only once we hold the results port, so no line is lost.
            "-chardev", $"socket,id=results,path={l.ResultsSocket},abstract=on,server=on,wait=on",
            "-serial", "chardev:results",
            "-chardev", $"socket,id=qmp,path={l.QmpSocket},abstract=on,server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
        ];
    }

    /// <summary>qemu's option values separate with commas: a literal comma is doubled.</summary>
    private static string Escape(string value) => value.Replace(",", ",,", StringComparison.Ordinal);

    /// <summary>KVM when asked, or (Auto) when /dev/kvm opens read-write and the CPU shows vmx or svm; TCG otherwise.</summary>
    public static VmAccelerator Resolve(VmAccelerator requested)
    {
        if (requested != VmAccelerator.Auto)
        {
            return requested;
        }
        try
        {
            using (File.Open("/dev/kvm", FileMode.Open, FileAccess.ReadWrite))
            {
            }
            var flags = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal)) ?? "";
            return flags.Split(' ').Any(f => f is "vmx" or "svm") ? VmAccelerator.Kvm : VmAccelerator.Tcg;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return VmAccelerator.Tcg;
        }
    }

    public static async Task<QemuMachine> StartAsync(string qemu, QemuLaunch launch, string workDirectory, CancellationToken ct)
    {
        var output = new OutputTail(50);
        RunningChild child;
        try
        {
            child = await ChildProcess.StartAsync(HostCommand.StartInfo(qemu, Arguments(launch), workDirectory), line =>
            {
                if (line is not null)
                {
                    output.Add(line);
                }
            }, CancellationToken.None).ConfigureAwait(false);
        }
        catch (SandboxException e)
        {
            throw new VmException($"cannot start {qemu} (install {HostPrograms.QemuSystem.Package}): {e.Message}", e);
        }
        var machine = new QemuMachine(launch, child, output);
        try
        {
            await machine.ConnectResultsAsync(ct).ConfigureAwait(false);
            return machine;
        }
        catch
        {
            await machine.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public bool HasExited => _child.Exited.IsCompleted;

    /// <summary>What qemu itself printed (errors such as a missing accelerator).</summary>
    public string QemuOutput => string.Join('\n', _output.Lines);

    private async Task ConnectResultsAsync(CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            if (HasExited)
            {
                throw new VmException($"qemu exited at start: {QemuOutput}");
            }
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint("\0" + _launch.ResultsSocket), ct).ConfigureAwait(false);
                _results = socket;
                _reader = Task.Run(() => ReadLinesAsync(socket), CancellationToken.None);
                return;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                socket.Dispose();
                await Task.Delay(50, ct).ConfigureAwait(false);
            }
            catch (SocketException e)
            {
                socket.Dispose();
                throw new VmException($"qemu's results port did not open within 30 s: {e.Message} {QemuOutput}", e);
            }
        }
    }

    private async Task ReadLinesAsync(Socket socket)
    {
        try
        {
            using var stream = new NetworkStream(socket, ownsSocket: false);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            while (await reader.ReadLineAsync(_kill.Token).ConfigureAwait(false) is { } line)
            {
                await _lines.Writer.WriteAsync(line, _kill.Token).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
        finally
        {
            _lines.Writer.TryComplete();
        }
    }

    /// <summary>The next line from the results port, or null when <paramref name="until"/> passes, qemu exits or the port closes.</summary>
    public async Task<string?> NextLineAsync(DateTime until, CancellationToken ct)
    {
        var left = until - DateTime.UtcNow;
        if (left <= TimeSpan.Zero)
        {
            return null;
        }
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(left);
        try
        {
            var read = _lines.Reader.ReadAsync(limit.Token).AsTask();
            var first = await Task.WhenAny(read, _child.Exited).ConfigureAwait(false);
            if (first == read || read.IsCompletedSuccessfully)
            {
                return await read.ConfigureAwait(false);
            }
            // qemu has gone: take what it wrote before it went.
            return _lines.Reader.TryRead(out var line) ? line : null;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return null;
        }
        catch (ChannelClosedException)
        {
            return null;
        }
    }

    /// <summary>The last <paramref name="count"/> non-empty lines of the serial console, without terminal escapes.</summary>
    public IReadOnlyList<string> ConsoleTail(int count)
    {
        try
        {
            var text = File.ReadAllText(_launch.ConsoleLog);
            return [.. TerminalEscape().Replace(text, "").Split('\n')
                .Select(l => l.TrimEnd('\r'))
                .Where(l => l.Trim().Length > 0)
                .TakeLast(count)];
        }
        catch (IOException)
        {
            return [];
        }
    }

    /// <summary>Powers the guest off: asks the check script (when it is up) and ACPI (QMP system_powerdown), waits up
    /// to <paramref name="grace"/>, then stops qemu (QMP quit), then kills it. Returns how qemu ended.</summary>
    public async Task<string> PowerOffAsync(bool guestListening, TimeSpan grace, CancellationToken ct)
    {
        if (HasExited)
        {
            return "qemu had already exited";
        }
        if (guestListening && _results is { } socket)
        {
            try
            {
                await socket.SendAsync(Encoding.ASCII.GetBytes(GuestScript.PowerOffRequest + "\n"), ct).ConfigureAwait(false);
            }
            catch (SocketException)
            {
            }
        }
        await QmpAsync("system_powerdown", ct).ConfigureAwait(false);
        if (guestListening && await ExitedWithinAsync(grace, ct).ConfigureAwait(false))
        {
            return "the guest powered off";
        }
        await QmpAsync("quit", ct).ConfigureAwait(false);
        if (await ExitedWithinAsync(TimeSpan.FromSeconds(5), ct).ConfigureAwait(false))
        {
            return guestListening ? $"the guest did not power off within {grace.TotalSeconds:0} s; qemu was stopped" : "qemu was stopped";
        }
        _child.Kill();
        await ExitedWithinAsync(TimeSpan.FromSeconds(10), CancellationToken.None).ConfigureAwait(false);
        return "qemu was killed";
    }

    private async Task<bool> ExitedWithinAsync(TimeSpan time, CancellationToken ct)
    {
        try
        {
            await _child.Exited.WaitAsync(time, ct).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            return false;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
        }
        return true;
    }

    /// <summary>Sends one QMP command; best effort (bounded to 5 s), as qemu may already be on its way out.</summary>
    private async Task QmpAsync(string command, CancellationToken ct)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(TimeSpan.FromSeconds(5));
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await socket.ConnectAsync(new UnixDomainSocketEndPoint("\0" + _launch.QmpSocket), limit.Token).ConfigureAwait(false);
            using var stream = new NetworkStream(socket, ownsSocket: false);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            await using var writer = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };
            await reader.ReadLineAsync(limit.Token).ConfigureAwait(false); // greeting
            foreach (var execute in new[] { "qmp_capabilities", command })
            {
                await writer.WriteLineAsync($$"""{"execute":"{{execute}}"}""").WaitAsync(limit.Token).ConfigureAwait(false);
                // Events may come before the reply.
                while (await reader.ReadLineAsync(limit.Token).ConfigureAwait(false) is { } reply
                    && !reply.Contains("\"return\"", StringComparison.Ordinal) && !reply.Contains("\"error\"", StringComparison.Ordinal))
                {
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
        {
            ct.ThrowIfCancellationRequested();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!HasExited)
        {
            _child.Kill();
        }
        try
        {
            await _child.Exited.WaitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException or SandboxException)
        {
        }
        await _kill.CancelAsync().ConfigureAwait(false);
        _results?.Dispose();
        if (_reader is not null)
        {
            await _reader.ConfigureAwait(false);
        }
        _kill.Dispose();
    }

    /// <summary>A free TCP port on 127.0.0.1 (closed again; qemu binds it a moment later).</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    [GeneratedRegex(@"\x1B\[[0-9;?]*[A-Za-z]|\x1B[()][A-Za-z0-9]|\x1Bc")]
    private static partial Regex TerminalEscape();
}
