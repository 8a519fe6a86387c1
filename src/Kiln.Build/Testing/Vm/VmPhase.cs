using System.Diagnostics;
using System.Globalization;
using System.Net.Http;
using Kiln.Build.Execution;
using Kiln.Build.Testing.Spec;

namespace Kiln.Build.Testing.Vm;

/// <summary>The VM phase: boots a raw disk (MBR, ext4 root, systemd) under qemu and runs the spec's command,
/// service and port checks inside it and its http checks from the host through forwarded ports, then powers it
/// off. The disk is never changed: a throwaway copy gets a oneshot check unit (see <see cref="GuestScript"/>),
/// and the copy, the logs and qemu are gone when this returns, however it returns.</summary>
public static class VmPhase
{
    /// <summary>Lines of the serial console quoted when the guest does not come up.</summary>
    public const int ConsoleLines = 30;

    /// <summary>The checks this phase runs: command, service, port and http.</summary>
    public static bool Supports(Check check) => check is CommandCheck or ServiceCheck or PortCheck or HttpCheck;

    /// <summary>Boots <paramref name="rawDiskPath"/> and runs <paramref name="checks"/> (all must be
    /// <see cref="Supports">supported</see>); returns their reports in the same order, each also given to
    /// <paramref name="finished"/>. A guest that does not come up fails every check with the end of its serial
    /// console; a disk or host that cannot run the phase throws <see cref="VmException"/>.</summary>
    public static async Task<IReadOnlyList<CheckReport>> RunAsync(string rawDiskPath, IReadOnlyList<Check> checks, VmOptions options,
        Action<CheckReport> finished, CancellationToken cancellationToken = default)
    {
        var ct = cancellationToken;
        var plan = VmPlan.For(checks);
        var clock = Stopwatch.StartNew();
        void Report(VmStage stage, string message) => options.Progress?.Report(new VmEvent(stage, message, clock.Elapsed));

        var root = await MbrPartitionTable.FindRootAsync(rawDiskPath, ct).ConfigureAwait(false);
        var parent = options.WorkDirectory ?? Path.GetDirectoryName(Path.GetFullPath(rawDiskPath))!;
        var id = Guid.NewGuid().ToString("N")[..12];
        var work = Directory.CreateDirectory(Path.Combine(parent, ".kiln-vm-" + id)).FullName;
        QemuMachine? machine = null;
        try
        {
            Report(VmStage.Preparing, "copying the disk");
            var disk = await GuestDisk.CopyAsync(rawDiskPath, work, ct).ConfigureAwait(false);
            Report(VmStage.Preparing, $"writing the check unit into partition {root.Number}");
            await GuestDisk.InjectAsync(options.DebugfsPath, disk, root.StartByte, GuestScript.Script(plan.Probes), GuestScript.Unit(), work, ct)
                .ConfigureAwait(false);

            var accelerator = QemuMachine.Resolve(options.Accelerator);
            var forwards = plan.HttpGuestPorts.Select(p => (Host: QemuMachine.FreePort(), Guest: p)).ToList();
            var launch = new QemuLaunch
            {
                Disk = disk,
                ConsoleLog = Path.Combine(work, "console.log"),
                ResultsSocket = $"kiln-vm-{id}-results",
                QmpSocket = $"kiln-vm-{id}-qmp",
                Accelerator = accelerator,
                MemoryMiB = options.MemoryMiB,
                Cpus = options.Cpus,
                Forwards = forwards,
                ExtraDrives = options.ExtraDrives,
            };
            var bootTimeout = options.BootTimeoutFor(accelerator);
            machine = await QemuMachine.StartAsync(options.QemuPath, launch, work, ct).ConfigureAwait(false);
            Report(VmStage.Booting, $"booting under {accelerator.ToString().ToUpperInvariant()} (up to {bootTimeout.TotalSeconds:0} s)");

            var guest = await CollectAsync(machine, plan, bootTimeout, s => Report(VmStage.Ready, s), ct).ConfigureAwait(false);
            var reports = new List<CheckReport>();
            for (int i = 0; i < checks.Count; i++)
            {
                var failures = new List<CheckFailure>();
                var duration = TimeSpan.Zero;
                if (guest.NotReady is { } why)
                {
                    failures.Add(new CheckFailure("boot", $"the VM comes up within {bootTimeout.TotalSeconds:0} s", why));
                }
                else if (checks[i] is HttpCheck h)
                {
                    Report(VmStage.Checking, h.Name);
                    var started = Stopwatch.StartNew();
                    await HttpAsync(h, forwards.First(f => f.Guest == h.Url.Port).Host, failures, ct).ConfigureAwait(false);
                    duration = started.Elapsed;
                }
                else
                {
                    var probes = plan.ProbesOfCheck[i];
                    duration = probes.Aggregate(TimeSpan.Zero, (t, p) => t + guest.Durations.GetValueOrDefault(p.Id));
                    var missing = probes.FirstOrDefault(p => !guest.Results.ContainsKey(p.Id));
                    if (missing is not null)
                    {
                        failures.Add(new CheckFailure("result", "a result from the guest", guest.Incomplete ?? "none"));
                    }
                    else
                    {
                        Outcome(checks[i], [.. probes.Select(p => guest.Results[p.Id])], failures);
                    }
                }
                var report = new CheckReport { Section = checks[i].Section, Subject = checks[i].Subject, Duration = duration, Failures = failures };
                reports.Add(report);
                finished(report);
            }

            Report(VmStage.PoweringOff, "powering off");
            var ended = await machine.PowerOffAsync(guest.NotReady is null, options.PowerOffTimeout, ct).ConfigureAwait(false);
            Report(VmStage.Finished, ended);
            return reports;
        }
        finally
        {
            if (machine is not null)
            {
                await machine.DisposeAsync().ConfigureAwait(false);
            }
            try
            {
                Directory.Delete(work, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>What the guest reported: the results by probe, how long each took (time between its line and the
    /// one before), and why it never came up or why results are missing.</summary>
    private sealed record GuestOutcome(Dictionary<int, GuestResult> Results, Dictionary<int, TimeSpan> Durations, string? NotReady, string? Incomplete);

    private static async Task<GuestOutcome> CollectAsync(QemuMachine machine, VmPlan plan, TimeSpan bootTimeout, Action<string> ready,
        CancellationToken ct)
    {
        var results = new Dictionary<int, GuestResult>();
        var durations = new Dictionary<int, TimeSpan>();
        var started = Stopwatch.StartNew();
        var deadline = DateTime.UtcNow + bootTimeout;
        string? state = null;
        while (state is null && await machine.NextLineAsync(deadline, ct).ConfigureAwait(false) is { } line)
        {
            state = GuestResults.Ready(line);
        }
        if (state is null)
        {
            var what = machine.HasExited
                ? $"qemu exited before the guest was ready{(machine.QemuOutput.Length > 0 ? ": " + machine.QemuOutput.Trim() : "")}"
                : $"no ready marker from the guest within {bootTimeout.TotalSeconds:0} s";
            return new GuestOutcome(results, durations, NotReadyMessage(what, machine.ConsoleTail(ConsoleLines)), null);
        }
        ready($"the guest is up ({state}) after {started.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s");

        // Each probe is bounded in the guest; the budget adds its kill grace and the serial line's time.
        var budget = plan.Probes.Aggregate(TimeSpan.FromSeconds(30), (t, p) => t + p.Timeout + TimeSpan.FromSeconds(6));
        deadline = DateTime.UtcNow + budget;
        var last = Stopwatch.StartNew();
        while (await machine.NextLineAsync(deadline, ct).ConfigureAwait(false) is { } line)
        {
            if (GuestResults.Result(line) is { } r)
            {
                results[r.Id] = r;
                durations[r.Id] = last.Elapsed;
                last.Restart();
            }
            else if (GuestResults.Done(line) is not null)
            {
                return new GuestOutcome(results, durations, null, null);
            }
        }
        var incomplete = machine.HasExited
            ? "qemu exited while the checks ran"
            : $"the guest did not finish its checks within {budget.TotalSeconds:0} s";
        return new GuestOutcome(results, durations, null, NotReadyMessage(incomplete, machine.ConsoleTail(ConsoleLines)));
    }

    internal static string NotReadyMessage(string what, IReadOnlyList<string> console) =>
        console.Count == 0
            ? $"{what}; the serial console stayed empty"
            : $"{what}; the last {console.Count} lines of the serial console:\n" + string.Join('\n', console);

    /// <summary>Compares a check with the results of its probes (in the order <see cref="VmPlan"/> made them).</summary>
    internal static void Outcome(Check check, IReadOnlyList<GuestResult> results, List<CheckFailure> failures)
    {
        switch (check)
        {
            case CommandCheck c:
                var r = results[0];
                BakePhase.Outcome(c, r.ExitCode, r.Stdout, r.Stderr, r.TimedOut, failures);
                break;
            case ServiceCheck s:
                int next = 0;
                if (s.Enabled is { } enabled)
                {
                    Service("enabled", enabled, results[next++], failures);
                }
                if (s.Active is { } active)
                {
                    Service("active", active, results[next], failures);
                }
                break;
            case PortCheck p:
                var listening = results[0].ExitCode == 0 && !results[0].TimedOut;
                if (listening != p.Listening)
                {
                    var note = results[0].Stderr.Trim().Length > 0 ? $" ({BakePhase.Excerpt(results[0].Stderr)})" : "";
                    failures.Add(new CheckFailure("listening", Bool(p.Listening), Bool(listening) + note));
                }
                break;
            default:
                throw new InvalidOperationException($"{check.Name} has no guest probe");
        }
    }

    private static void Service(string matcher, bool expected, GuestResult r, List<CheckFailure> failures)
    {
        var actual = r.ExitCode == 0 && !r.TimedOut;
        if (actual != expected)
        {
            failures.Add(new CheckFailure(matcher, Bool(expected), $"{Bool(actual)} (systemctl is-{matcher}: {BakePhase.Excerpt(r.Stdout + r.Stderr)})"));
        }
    }

    /// <summary>GETs the check's URL through the forwarded port (Host header as written), retrying while the guest's
    /// server is not yet answering, within the check's timeout.</summary>
    private static async Task HttpAsync(HttpCheck check, int hostPort, List<CheckFailure> failures, CancellationToken ct)
    {
        var target = new UriBuilder(check.Url) { Host = "127.0.0.1", Port = hostPort }.Uri;
        using var handler = new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false };
        using var client = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        var clock = Stopwatch.StartNew();
        while (true)
        {
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
            limit.CancelAfter(check.Timeout - clock.Elapsed > TimeSpan.Zero ? check.Timeout - clock.Elapsed : TimeSpan.Zero);
            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, target);
                request.Headers.Host = check.Url.Authority;
                using var response = await client.SendAsync(request, limit.Token).ConfigureAwait(false);
                var body = await response.Content.ReadAsStringAsync(limit.Token).ConfigureAwait(false);
                var headers = response.Headers.Concat(response.Content.Headers)
                    .ToDictionary(h => h.Key, h => string.Join(", ", h.Value), StringComparer.OrdinalIgnoreCase);
                HttpOutcome(check, (int)response.StatusCode, headers, body, failures);
                return;
            }
            catch (Exception e) when (e is HttpRequestException or IOException || (e is OperationCanceledException && !ct.IsCancellationRequested))
            {
                if (clock.Elapsed + TimeSpan.FromMilliseconds(500) >= check.Timeout)
                {
                    failures.Add(new CheckFailure("status", check.Status.ToString(CultureInfo.InvariantCulture),
                        $"no response within {check.Timeout.TotalSeconds:0.#} s: {e.Message}"));
                    return;
                }
                await Task.Delay(500, ct).ConfigureAwait(false);
            }
        }
    }

    internal static void HttpOutcome(HttpCheck check, int status, IReadOnlyDictionary<string, string> headers, string body, List<CheckFailure> failures)
    {
        if (status != check.Status)
        {
            failures.Add(new CheckFailure("status", check.Status.ToString(CultureInfo.InvariantCulture),
                $"{status.ToString(CultureInfo.InvariantCulture)}; body: {BakePhase.Excerpt(body)}"));
        }
        foreach (var s in check.Body.Where(s => !body.Contains(s, StringComparison.Ordinal)))
        {
            failures.Add(new CheckFailure("body", BakePhase.Quote(s), BakePhase.Excerpt(body)));
        }
        foreach (var (name, contains) in check.Headers)
        {
            var value = headers.TryGetValue(name, out var v) ? v : null;
            if (value is null || !value.Contains(contains, StringComparison.Ordinal))
            {
                failures.Add(new CheckFailure($"headers {name}", $"contains {BakePhase.Quote(contains)}", value is null ? "no such header" : BakePhase.Quote(value)));
            }
        }
    }

    private static string Bool(bool b) => b ? "true" : "false";
}
