using Kiln.Build.Execution;

namespace Kiln.Cli;

/// <summary>What kiln does with an exception no command expects (a bug): one line naming the operation and the
/// error, exit 1, the stack only when asked for (-v, KILN_DEBUG, or the --trace file). Also the last resort for an
/// exception on a thread of kiln's own, where no command can catch it: without it the runtime aborts the process
/// (SIGABRT, exit 134) and prints the stack.</summary>
internal static class Unexpected
{
    private static readonly Lock s_gate = new();
    private static TextWriter s_stderr = TextWriter.Null;
    private static int s_crashed;

    // What the current command is doing. Each command gets its own, flowing with its async context, so commands run
    // in-process side by side (the fast test tier) do not name each other's operations; the last one started is what
    // the last resort, on a thread of no command, names.
    private static readonly AsyncLocal<CommandState?> s_current = new();
    private static CommandState s_last = new("kiln", false);

    private sealed class CommandState(string command, bool showStack)
    {
        public string Command { get; } = command;
        public bool ShowStack { get; } = showStack;
        public List<string> Running { get; } = []; // operations started and not finished, latest last
    }

    private static CommandState Current => s_current.Value ?? Volatile.Read(ref s_last);

    /// <summary>True when the stack of an unexpected error is to be printed after its line.</summary>
    public static bool ShowStack => Current.ShowStack;

    /// <summary>Called on the last resort, before the process ends (e.g. to write the trace with the error).</summary>
    public static Action<Exception>? OnLastResort { get; set; }

    /// <summary>Makes every unhandled exception of the process end it with one line and exit 1.</summary>
    public static void InstallLastResort(TextWriter stderr)
    {
        s_stderr = stderr;
        AppDomain.CurrentDomain.UnhandledException += (_, e) => LastResort(e.ExceptionObject as Exception);
        // A failed task nobody awaits (a prewarm, say) does not end the process on this runtime; it is noted, and only
        // with the stack asked for.
        TaskScheduler.UnobservedTaskException += (_, e) =>
        {
            e.SetObserved();
            if (ShowStack)
            {
                Write($"warning: a background task failed: {e.Exception}");
            }
        };
    }

    public static void Starting(string command, string[] args)
    {
        int end = Array.IndexOf(args, "--");
        bool showStack = args.Take(end < 0 ? args.Length : end).Any(a => a is "-v" or "--verbose")
            || CliEnvironment.Get("KILN_DEBUG") is { Length: > 0 };
        var state = new CommandState("kiln " + command, showStack);
        s_current.Value = state;
        Volatile.Write(ref s_last, state);
    }

    /// <summary>The one line for an unexpected exception: the command, what it was doing, the exception's type and
    /// message.</summary>
    public static string Line(Exception ex, string? where = null)
    {
        string operation;
        bool hasVerbose;
        var state = Current;
        lock (s_gate)
        {
            operation = state.Running.Count > 0 ? $"{state.Command} failed while at {state.Running[^1]}" : $"{state.Command} failed";
            hasVerbose = state.Command is "kiln build" or "kiln test";
        }
        var message = string.Join(' ', ex.Message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        // Only build and test take -v; the other commands would refuse it as a usage error.
        var hint = ShowStack ? "" : hasVerbose ? " (a bug in kiln; -v or KILN_DEBUG=1 shows where)" : " (a bug in kiln; KILN_DEBUG=1 shows where)";
        return $"error: {operation}: unexpected {ex.GetType().Name}{where}: {message}{hint}";
    }

    /// <summary>Reports an unexpected exception a command threw; returns the exit code.</summary>
    public static int Report(TextWriter stderr, Exception ex)
    {
        stderr.WriteLine(Line(ex));
        if (ShowStack)
        {
            stderr.WriteLine(ex.ToString());
        }
        return ExitCodes.Failed;
    }

    private static void LastResort(Exception? ex)
    {
        // Once: a second thread that fails meanwhile waits here until the process has ended.
        if (Interlocked.Exchange(ref s_crashed, 1) == 1)
        {
            Thread.Sleep(Timeout.Infinite);
        }
        try
        {
            ex ??= new InvalidOperationException("an exception of an unknown kind");
            Write(Line(ex, " on a background thread"));
            if (ShowStack)
            {
                Write(ex.ToString());
            }
            OnLastResort?.Invoke(ex);
        }
        catch (Exception)
        {
            // Nothing more can be said; the exit code still says it failed.
        }
        Environment.Exit(ExitCodes.Failed);
    }

    private static void Write(string text)
    {
        lock (s_gate)
        {
            s_stderr.WriteLine(text);
            s_stderr.Flush();
        }
    }

    /// <summary>Follows a build's events to know what is running, so that the error line can name it.</summary>
    public sealed class Tracker(IProgress<BuildEvent> inner) : IProgress<BuildEvent>
    {
        public void Report(BuildEvent value)
        {
            switch (value)
            {
                case StepStarted s:
                    Add(Step(s.Image, s.Index, s.Description));
                    break;
                case StepFinished f:
                    Remove(Step(f.Image, f.Index, f.Description));
                    break;
                case TestPhaseStarted t:
                    Add($"the {t.Phase} tests of {t.Image}");
                    break;
                case TestPhaseFinished t:
                    Remove($"the {t.Report.Phase} tests of {t.Image}");
                    break;
                case Kiln.Build.Exporters.ExportStarted e:
                    Add($"the {e.Format} output of {e.Image}");
                    break;
                case Kiln.Build.Exporters.ExportFinished e:
                    Remove($"the {e.Result.Format} output of {e.Image}");
                    break;
            }
            inner.Report(value);
        }

        private static string Step(string image, int index, string description) =>
            index < 0 ? $"{image} [base] ({description})" : $"{image} step {index + 1} ({description})";

        private static void Add(string operation)
        {
            var state = Current;
            lock (s_gate)
            {
                state.Running.Add(operation);
            }
        }

        private static void Remove(string operation)
        {
            var state = Current;
            lock (s_gate)
            {
                state.Running.Remove(operation);
            }
        }
    }

    /// <summary>For tests only: the fault that KILN_TEST_FAULT asks for, as <see cref="BuildOptions.TestFault"/>; null
    /// when it is unset (always, in normal use). The value is POINT (step-start or step-output), optionally @N for the
    /// Nth step only (0: the base), and optionally ",thread" to throw on a thread of its own, where only the last
    /// resort can catch it. It throws a NullReferenceException, the kind of bug it stands in for.</summary>
    public static Action<string, int>? TestFault(string? spec)
    {
        if (string.IsNullOrEmpty(spec))
        {
            return null;
        }
        bool onThread = spec.EndsWith(",thread", StringComparison.Ordinal);
        var point = onThread ? spec[..^",thread".Length] : spec;
        int? step = null;
        if (point.IndexOf('@') is var at and > 0)
        {
            step = int.TryParse(point[(at + 1)..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n)
                ? n : throw new UsageException($"KILN_TEST_FAULT: '{spec}' is not POINT[@STEP][,thread]");
            point = point[..at];
        }
        if (point is not ("step-start" or "step-output"))
        {
            throw new UsageException($"KILN_TEST_FAULT: unknown point '{point}' (step-start or step-output)");
        }
        return (name, index) =>
        {
            if (name != point || (step is { } only && only != index))
            {
                return;
            }
#pragma warning disable CA2201 // the very kind of exception a bug throws
            var fault = new NullReferenceException($"injected fault at {name} {index} (KILN_TEST_FAULT)");
#pragma warning restore CA2201
            if (!onThread)
            {
                throw fault;
            }
            var thread = new Thread(() => throw fault) { IsBackground = true, Name = "kiln-test-fault" };
            thread.Start();
            thread.Join();
        };
    }
}
