namespace Kiln.Build.Testing.Boot;

public sealed record InstanceOptions
{
    /// <summary>Boot the image's init (systemd) as PID 1 instead of its entrypoint/cmd.</summary>
    public bool Systemd { get; init; }

    /// <summary>How long to wait for the instance to come up.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The most the instance's tmpfs may hold (as the build's memory scratch size); null: its writes go
    /// to the store's disk.</summary>
    public string? MemoryScratchSize { get; init; }

    /// <summary>How long a systemd instance is given to power off before it is killed.</summary>
    public TimeSpan StopTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Files (absolute paths inside the image, no <c>..</c>) put into the instance's throwaway overlay before
    /// it starts, mode 0600, as a cloud-init seed folder is; the image itself is not changed.</summary>
    public IReadOnlyList<KeyValuePair<string, byte[]>> Files { get; init; } = [];
    /// <summary>Replaces the image's cmd (its entrypoint stays); null: the image's. Not with <see cref="Systemd"/>.</summary>
    public IReadOnlyList<string>? Cmd { get; init; }

    /// <summary>Each line the instance writes (stdout and stderr), as it comes, on a thread that reads them.</summary>
    public Action<string>? Output { get; init; }

    /// <summary>Stopping sends SIGTERM first (when the first process handles it) and waits up to
    /// <see cref="StopTimeout"/>; false: a throwaway test instance is killed at once.</summary>
    public bool GracefulStop { get; init; }
    /// <summary>Records what the instance opens and executes (minimize: from-tests), or null.</summary>
    public Sandbox.AccessRecorder? Recorder { get; init; }
}

public sealed record CommandResult(int ExitCode, string Stdout, string Stderr, bool TimedOut);

public sealed record HttpResult(int Status, IReadOnlyDictionary<string, string> Headers, string Body);

/// <summary>An instance could not be started, did not come up, or died.</summary>
public sealed class InstanceException : Exception
{
    public InstanceException(string message, string output = "", Exception? inner = null)
        : base(string.IsNullOrWhiteSpace(output) ? message : message + Environment.NewLine + "instance output:" + Environment.NewLine + output, inner)
    {
        Output = output;
    }

    public string Output { get; }
}
