using Kiln.Build.Store;
using Kiln.Build.Testing;
using Kiln.Build.Testing.Boot;
using Kiln.Oci;

namespace Kiln.Build.Local;

public sealed record RunOptions
{
    /// <summary>The ports to publish; null: each port the image exposes, on the same port of 127.0.0.1.</summary>
    public IReadOnlyList<PublishedPort>? Ports { get; init; }

    /// <summary>Boot the image's init under systemd-nspawn (as the boot phase does for <c>boot: systemd</c>).</summary>
    public bool Systemd { get; init; }

    /// <summary>Replaces the image's cmd; null: the image's.</summary>
    public IReadOnlyList<string>? Cmd { get; init; }

    /// <summary>Each line the instance writes.</summary>
    public Action<string>? Output { get; init; }

    /// <summary>How long to wait for the published ports to listen before saying the instance is up anyway.</summary>
    public TimeSpan ReadyTimeout { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>An image by name running as an instance (the boot phase's: its own namespaces, a throwaway overlay) with
/// its ports published on the host; <see cref="RestartAsync"/> replaces the instance with one of the image the name
/// now gives, behind the same listening sockets. Disposing stops the instance and the forwarding: no process,
/// namespace, mount or listening socket stays.</summary>
/// <remarks>The store lock is held shared while it runs: gc waits rather than remove the layers under the
/// instance.</remarks>
public sealed class LocalRun : IAsyncDisposable
{
    private readonly KilnStore _store;
    private readonly IDisposable _lock;
    private readonly string _image;
    private readonly RunOptions _options;
    private PortForwarder? _forwarder;
    private Instance? _instance;

    private LocalRun(KilnStore store, IDisposable storeLock, string image, RunOptions options)
    {
        _store = store;
        _lock = storeLock;
        _image = image;
        _options = options;
    }

    public IReadOnlyList<PublishedPort> Ports { get; private set; } = [];

    /// <summary>The manifest digest of the image the instance runs.</summary>
    public Digest Digest { get; private set; }

    /// <summary>The running instance's exit (its status).</summary>
    public Task<int> Exited => _instance!.Exited;

    /// <summary>Starts the image the store names <paramref name="image"/>; returns once its published ports listen
    /// (or <see cref="RunOptions.ReadyTimeout"/> passed: the instance then still runs).</summary>
    public static async Task<LocalRun> StartAsync(string storeRoot, string image, RunOptions options, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!Environment.IsPrivilegedProcess)
        {
            throw new Sandbox.SandboxException("kiln run mounts overlayfs and creates namespaces: run it as root");
        }
        var store = KilnStore.Open(storeRoot);
        IDisposable? storeLock = null;
        LocalRun? run = null;
        try
        {
            storeLock = store.AcquireLock(exclusive: false, ct);
            run = new LocalRun(store, storeLock, image, options);
            var (digest, state) = await run.ReadImageAsync(ct).ConfigureAwait(false);
            run.Ports = options.Ports ?? [.. BootPhase.ExposedPorts(state).Where(p => p.Protocol == "tcp")
                .Select(p => new PublishedPort(System.Net.IPAddress.Loopback, p.Port, p.Port))];
            // The host's ports first: one that is taken fails the run before anything starts.
            run._forwarder = PortForwarder.Start(run.Ports, () => run._instance is { Exited.IsCompleted: false } i ? i.Pid : null);
            run._instance = await run.StartInstanceAsync(state, ct).ConfigureAwait(false);
            run.Digest = digest;
            return run;
        }
        catch
        {
            if (run is not null)
            {
                await run.DisposeAsync().ConfigureAwait(false);
            }
            else
            {
                storeLock?.Dispose();
                store.Dispose();
            }
            throw;
        }
    }

    private async Task<(Digest Digest, ImageState State)> ReadImageAsync(CancellationToken ct)
    {
        var manifest = _store.Names.TryGetTag(_image)
            ?? throw LocalException.BadInput($"the store has no image named '{_image}' (build it first)");
        return (manifest.Digest, await _store.Content.ReadImageStateAsync(manifest.Digest, ct).ConfigureAwait(false));
    }

    private async Task<Instance> StartInstanceAsync(ImageState state, CancellationToken ct)
    {
        var instance = await Instance.StartAsync(_store, state, new InstanceOptions
        {
            Systemd = _options.Systemd,
            Cmd = _options.Cmd,
            Output = _options.Output,
            GracefulStop = true,
            StartTimeout = _options.ReadyTimeout,
        }, ct).ConfigureAwait(false);
        try
        {
            await instance.WaitForPortsAsync([.. Ports.Select(p => ("tcp", p.Port)).Distinct()], _options.ReadyTimeout, ct).ConfigureAwait(false);
        }
        catch (InstanceException)
        {
            // Slow to listen, but running: it serves once it listens. Or it has exited (a command that ends at once):
            // its exit status is the answer.
        }
        catch
        {
            await instance.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        return instance;
    }

    /// <summary>Replaces the instance with one of the image the name now gives, when that is another image or the
    /// instance has exited: the new one starts beside the old (each has its own namespaces) and takes the published
    /// ports once they listen, then the old one stops. Returns whether it replaced the instance. When the new
    /// instance fails to start, the old one keeps serving and the error is thrown.</summary>
    public async Task<bool> RestartAsync(CancellationToken ct = default)
    {
        var (digest, state) = await ReadImageAsync(ct).ConfigureAwait(false);
        if (digest == Digest && !_instance!.Exited.IsCompleted)
        {
            return false;
        }
        var next = await StartInstanceAsync(state, ct).ConfigureAwait(false);
        if (next.Exited.IsCompleted)
        {
            var output = next.Output;
            await next.DisposeAsync().ConfigureAwait(false);
            throw new InstanceException("the new instance exited at once; the previous one keeps serving", output);
        }
        var old = _instance;
        _instance = next;
        Digest = digest;
        if (old is not null)
        {
            await old.DisposeAsync().ConfigureAwait(false);
        }
        return true;
    }

    public async ValueTask DisposeAsync()
    {
        if (_forwarder is not null)
        {
            await _forwarder.DisposeAsync().ConfigureAwait(false);
        }
        if (_instance is not null)
        {
            await _instance.DisposeAsync().ConfigureAwait(false);
        }
        _lock.Dispose();
        _store.Dispose();
    }
}
