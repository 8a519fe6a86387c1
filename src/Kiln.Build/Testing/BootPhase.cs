using System.Diagnostics;
using System.Globalization;
using Kiln.Build.Definition;
using Kiln.Build.Execution;
using Kiln.Build.Store;
using Kiln.Build.Testing.Boot;
using Kiln.Build.Testing.Spec;

namespace Kiln.Build.Testing;

/// <summary>The boot phase: starts an instance of the image, waits (bounded) for its exposed ports, runs port, http,
/// boot-phase command and service checks inside its namespaces, then stops it (nothing of it remains).</summary>
internal static class BootPhase
{
    private static readonly TimeSpan PortsTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan ListenGrace = TimeSpan.FromSeconds(5);

    /// <param name="teardown">Where the instance is stopped and removed once the checks are done; null: before this
    /// returns.</param>
    public static async Task<IReadOnlyList<CheckReport>> RunAsync(KilnStore store, ImageState state, BootMode boot, string? memoryScratchSize, List<Check> checks,
        Action<CheckReport> finished, Teardown? teardown, CancellationToken ct, Sandbox.AccessRecorder? recorder = null)
    {
        var reports = new List<CheckReport>();
        var clock = Stopwatch.StartNew();
        var options = new InstanceOptions { Systemd = boot == BootMode.Systemd, MemoryScratchSize = memoryScratchSize, Recorder = recorder };
        Instance? instance = null;
        try
        {
            try
            {
                instance = await Instance.StartAsync(store, state, options, ct).ConfigureAwait(false);
                await instance.WaitForPortsAsync(ExposedPorts(state), PortsTimeout, ct).ConfigureAwait(false);
            }
            catch (InstanceException e)
            {
                // The instance never became ready: every check fails with why (the first one with its output).
                foreach (var c in checks)
                {
                    var why = reports.Count == 0 ? e.Message : $"the instance did not start (see {checks[0].Name})";
                    var r = new CheckReport
                    {
                        Section = c.Section,
                        Subject = c.Subject,
                        Duration = reports.Count == 0 ? clock.Elapsed : TimeSpan.Zero,
                        Failures = [new CheckFailure("start", "the instance starts and listens on its exposed ports", why)],
                    };
                    reports.Add(r);
                    finished(r);
                }
                return reports;
            }
            foreach (var check in checks)
            {
                var r = await RunAsync(instance, check, ct).ConfigureAwait(false);
                reports.Add(r);
                finished(r);
            }
        }
        finally
        {
            if (instance is not null)
            {
                // Disposing kills the instance at once; waiting for it to go and removing its files can happen while
                // the image is tagged.
                var stopped = instance.DisposeAsync().AsTask();
                if (teardown is null)
                {
                    await stopped.ConfigureAwait(false);
                }
                else
                {
                    teardown.Add(stopped);
                }
            }
        }
        return reports;
    }

    /// <summary>Runs boot-phase checks against an instance that is up (a release's serving instance).</summary>
    internal static async Task<IReadOnlyList<CheckReport>> CheckAsync(Instance instance, IEnumerable<Check> checks, CancellationToken ct)
    {
        var reports = new List<CheckReport>();
        foreach (var check in checks)
        {
            reports.Add(await RunAsync(instance, check, ct).ConfigureAwait(false));
        }
        return reports;
    }

    /// <summary>Runs one port, http, service or command check against a running instance.</summary>
    internal static async Task<CheckReport> RunAsync(Instance instance, Check check, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var failures = new List<CheckFailure>();
        switch (check)
        {
            case PortCheck p:
                await PortAsync(instance, p, failures, ct).ConfigureAwait(false);
                break;
            case HttpCheck h:
                await HttpAsync(instance, h, failures, ct).ConfigureAwait(false);
                break;
            case CommandCheck c:
                var result = await instance.ExecAsync(c.Subject, c.Timeout, ct).ConfigureAwait(false);
                BakePhase.Outcome(c, result.ExitCode, result.Stdout, result.Stderr, result.TimedOut, failures);
                break;
            case ServiceCheck s:
                await ServiceAsync(instance, s, failures, ct).ConfigureAwait(false);
                break;
            default:
                throw new InvalidOperationException($"{check.Name} is not a boot-phase check");
        }
        return new CheckReport { Section = check.Section, Subject = check.Subject, Duration = clock.Elapsed, Failures = failures };
    }

    private static async Task PortAsync(Instance instance, PortCheck check, List<CheckFailure> failures, CancellationToken ct)
    {
        // A port that is not exposed may open a moment after the exposed ones: give it a short grace.
        var deadline = Stopwatch.StartNew();
        bool listening = await instance.IsListeningAsync(check.Protocol, check.Port, ct).ConfigureAwait(false);
        while (check.Listening && !listening && deadline.Elapsed < ListenGrace)
        {
            await Task.Delay(50, ct).ConfigureAwait(false);
            listening = await instance.IsListeningAsync(check.Protocol, check.Port, ct).ConfigureAwait(false);
        }
        if (listening != check.Listening)
        {
            failures.Add(new CheckFailure("listening", Bool(check.Listening), Bool(listening)));
        }
    }

    /// <summary>A connection refused, or dropped before any response: what a port that closes again a moment after it
    /// was seen listening gives.</summary>
    private static bool IsTransient(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
        {
            if (e is System.Net.Sockets.SocketException
                {
                    SocketErrorCode: System.Net.Sockets.SocketError.ConnectionRefused or System.Net.Sockets.SocketError.ConnectionReset
                        or System.Net.Sockets.SocketError.ConnectionAborted,
                }
                || e is HttpRequestException { HttpRequestError: HttpRequestError.ResponseEnded }
                || e is HttpIOException { HttpRequestError: HttpRequestError.ResponseEnded })
            {
                return true;
            }
        }
        return false;
    }

    private static async Task HttpAsync(Instance instance, HttpCheck check, List<CheckFailure> failures, CancellationToken ct)
    {
        HttpResult response;
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                response = await instance.HttpGetAsync(check.Url, check.Timeout, ct).ConfigureAwait(false);
                break;
            }
            catch (Exception e) when (IsTransient(e) && clock.Elapsed < ListenGrace)
            {
                // A port seen listening may close again a moment later: systemd's nginx.service runs `nginx -t`
                // (which binds the ports) before nginx itself. A connection refused, or accepted into that backlog and
                // dropped when it closes, is retried for a short grace.
                await Task.Delay(100, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is InstanceException or HttpRequestException or TimeoutException or IOException
                || (e is OperationCanceledException && !ct.IsCancellationRequested))
            {
                failures.Add(new CheckFailure("status", check.Status.ToString(CultureInfo.InvariantCulture), $"no response: {e.Message}"));
                return;
            }
        }
        if (response.Status != check.Status)
        {
            failures.Add(new CheckFailure("status", check.Status.ToString(CultureInfo.InvariantCulture),
                $"{response.Status.ToString(CultureInfo.InvariantCulture)}; body: {BakePhase.Excerpt(response.Body)}"));
        }
        foreach (var s in check.Body.Where(s => !response.Body.Contains(s, StringComparison.Ordinal)))
        {
            failures.Add(new CheckFailure("body", BakePhase.Quote(s), BakePhase.Excerpt(response.Body)));
        }
        foreach (var (name, contains) in check.Headers)
        {
            var value = response.Headers.FirstOrDefault(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)).Value;
            if (value is null || !value.Contains(contains, StringComparison.Ordinal))
            {
                failures.Add(new CheckFailure($"headers {name}", $"contains {BakePhase.Quote(contains)}", value is null ? "no such header" : BakePhase.Quote(value)));
            }
        }
    }

    /// <summary>How long a unit in a transitional state (activating, reloading, deactivating) is given to settle.</summary>
    private static readonly TimeSpan ServiceGrace = TimeSpan.FromSeconds(30);

    private static async Task ServiceAsync(Instance instance, ServiceCheck check, List<CheckFailure> failures, CancellationToken ct)
    {
        // Unit names are validated by the spec parser (no shell metacharacters).
        if (check.Enabled is { } enabled)
        {
            var r = await instance.ExecAsync($"systemctl is-enabled {check.Subject}", TimeSpan.FromSeconds(10), ct).ConfigureAwait(false);
            if ((r.ExitCode == 0 && !r.TimedOut) != enabled)
            {
                failures.Add(new CheckFailure("enabled", Bool(enabled), $"{Bool(!enabled)} (systemctl is-enabled: {BakePhase.Excerpt(r.Stdout + r.Stderr)})"));
            }
        }
        if (check.Active is { } active)
        {
            var r = await instance.ExecAsync($"systemctl is-active {check.Subject}", TimeSpan.FromSeconds(10), ct).ConfigureAwait(false);
            // A unit still starting (or reloading) is on its way, not an answer: a forking server such as nginx listens
            // before systemd has seen its PID file. Asked again until it settles, within the services' grace.
            var settling = Stopwatch.StartNew();
            while (!r.TimedOut && r.Stdout.Trim() is "activating" or "reloading" or "deactivating" && settling.Elapsed < ServiceGrace)
            {
                await Task.Delay(50, ct).ConfigureAwait(false);
                r = await instance.ExecAsync($"systemctl is-active {check.Subject}", TimeSpan.FromSeconds(10), ct).ConfigureAwait(false);
            }
            if ((r.ExitCode == 0 && !r.TimedOut) != active)
            {
                failures.Add(new CheckFailure("active", Bool(active), $"{Bool(!active)} (systemctl is-active: {BakePhase.Excerpt(r.Stdout + r.Stderr)})"));
            }
        }
    }

    /// <summary>The image config's ExposedPorts ("8080/tcp") as (protocol, port).</summary>
    internal static IReadOnlyList<(string Protocol, int Port)> ExposedPorts(ImageState state) =>
        [.. (state.Config.Config.ExposedPorts?.Keys ?? [])
            .Select(k => k.Split('/'))
            .Where(p => p.Length == 2 && int.TryParse(p[0], NumberStyles.None, CultureInfo.InvariantCulture, out _))
            .Select(p => (p[1], int.Parse(p[0], CultureInfo.InvariantCulture)))];

    private static string Bool(bool b) => b ? "true" : "false";
}
