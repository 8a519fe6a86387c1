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
