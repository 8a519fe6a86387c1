using Kiln.Build.Execution;
using Kiln.Build.Local;

namespace Kiln.Cli;

/// <summary><c>kiln shell IMAGE</c>, and the shell of <c>kiln build --debug</c>: an interactive shell on kiln's
/// terminal.</summary>
internal static class ShellCommand
{
    private static int s_open;

    /// <summary>While a shell is open, Ctrl-C is the shell's (it reaches the whole foreground process group, kiln too):
    /// kiln must not take it as an interrupt.</summary>
    public static bool IsOpen => Volatile.Read(ref s_open) > 0;

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        var a = Arguments.Parse(args, "shell", ["--help"], ["--network"], new Dictionary<string, string> { ["-h"] = "--help" });
        if (a.Has("--help"))
        {
            stdout.WriteLine(Help.Shell);
            return ExitCodes.Ok;
        }
        if (a.Positionals.Count != 1)
        {
            throw new UsageException("kiln shell: takes one IMAGE (see 'kiln shell --help')");
        }
        bool hostNetwork = Network("shell", a.Last("--network"));
        if (Console.IsInputRedirected)
        {
            stderr.WriteLine("kiln shell: stdin is not a terminal; the shell reads its commands from it");
        }
        return await OpenAsync(() => InteractiveShell.RunImageAsync(Cli.StoreRoot(), a.Positionals[0], hostNetwork, TerminalEnvironment(), ct)).ConfigureAwait(false);
    }

    /// <summary>--network none (the default: loopback only) or host.</summary>
    public static bool Network(string command, string? value) => value switch
    {
        null or "none" => false,
        "host" => true,
        _ => throw new UsageException($"kiln {command}: --network takes none or host, not '{value}'"),
    };

    /// <summary>For <c>kiln build --debug</c>: opens a shell in the failed step's tree, one at a time (steps of
    /// several images may fail at once).</summary>
    public static async Task DebugAsync(FailedStep step, TextWriter stderr, SemaphoreSlim oneAtATime, CancellationToken ct)
    {
        await oneAtATime.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            stderr.WriteLine($"{step.Image}: step {step.Number} ({step.Description}) failed with status {step.ExitStatus}; " +
                "a shell opens in its tree as it left it (nothing you change is kept); exit it to end the build");
            int status = await OpenAsync(() => InteractiveShell.RunOnFailedStepAsync(Cli.StoreRoot(), step, TerminalEnvironment(), ct)).ConfigureAwait(false);
            stderr.WriteLine($"{step.Image}: the debug shell exited (status {status})");
        }
        finally
        {
            oneAtATime.Release();
        }
    }

    private static async Task<int> OpenAsync(Func<Task<int>> shell)
    {
        Interlocked.Increment(ref s_open);
        try
        {
            return await shell().ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref s_open);
        }
    }

    /// <summary>What the shell needs of kiln's terminal: its type.</summary>
    private static IReadOnlyList<KeyValuePair<string, string>> TerminalEnvironment() =>
        CliEnvironment.Get("TERM") is { Length: > 0 } term ? [new("TERM", term)] : [];
}
