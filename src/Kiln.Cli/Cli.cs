using Kiln.Build.Definition;
using Kiln.Build.Execution;
using Kiln.Build.Exporters;
using Kiln.Build.Sandbox;
using Kiln.Build.Store;

namespace Kiln.Cli;

/// <summary>Dispatches a command line to a command and maps failures to exit codes.</summary>
public static class Cli
{
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        return await RunCommandAsync(args, stdout, stderr, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Runs a command in this process with <paramref name="environment"/> as the environment it reads (see
    /// <see cref="CliEnvironment"/>), for callers that run many commands in one process. Programs the command starts
    /// still get this process's environment, as they would get kiln's.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, IReadOnlyDictionary<string, string?> environment, CancellationToken cancellationToken)
    {
        CliEnvironment.Use(environment);
        return await RunCommandAsync(args, stdout, stderr, cancellationToken).ConfigureAwait(false);
    }

    private static async Task<int> RunCommandAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            (args.Length == 0 ? stderr : stdout).WriteLine(Help.Main);
            return args.Length == 0 ? ExitCodes.BadInput : ExitCodes.Ok;
        }
        if (args[0] is "--version")
        {
            stdout.WriteLine("kiln " + typeof(Cli).Assembly.GetName().Version);
            return ExitCodes.Ok;
        }
        var command = args[0];
        var rest = args.Skip(1).ToArray();
        Unexpected.Starting(command, rest);
        try
        {
            return command switch
            {
                "build" => await BuildCommand.RunAsync(rest, stdout, stderr, cancellationToken).ConfigureAwait(false),
                "test" => await TestCommand.RunAsync(rest, stdout, stderr, cancellationToken).ConfigureAwait(false),
                "images" => await StoreCommands.ImagesAsync(rest, stdout, cancellationToken).ConfigureAwait(false),
                "inspect" => await StoreCommands.InspectAsync(rest, stdout, cancellationToken).ConfigureAwait(false),
                "history" => await StoreCommands.HistoryAsync(rest, stdout, cancellationToken).ConfigureAwait(false),
                "minimize-report" => MinimizeCommand.Report(rest, stdout),
                "verify" => await StoreCommands.VerifyAsync(rest, stdout, cancellationToken).ConfigureAwait(false),
                "export" => await ExportCommand.RunAsync(rest, stdout, stderr, cancellationToken).ConfigureAwait(false),
                "gc" => await StoreCommands.GcAsync(rest, stdout, cancellationToken).ConfigureAwait(false),
                "push" => await RegistryCommands.PushAsync(rest, stdout, stderr, cancellationToken).ConfigureAwait(false),
                "pull" => await RegistryCommands.PullAsync(rest, stdout, stderr, cancellationToken).ConfigureAwait(false),
                "login" => await RegistryCommands.LoginAsync(rest, stdout, stderr, cancellationToken).ConfigureAwait(false),
                "logout" => await RegistryCommands.LogoutAsync(rest, stdout, cancellationToken).ConfigureAwait(false),
                "seed" => await ServiceCommands.SeedAsync(rest, stdout, cancellationToken).ConfigureAwait(false),
                "pairs" => await ServiceCommands.PairsAsync(rest, stdout, stderr, cancellationToken).ConfigureAwait(false),
                "run" => await RunCommand.RunAsync(rest, stdout, stderr, cancellationToken).ConfigureAwait(false),
                "shell" => await ShellCommand.RunAsync(rest, stdout, stderr, cancellationToken).ConfigureAwait(false),
                "promote" => await PromotionCommands.PromoteAsync(rest, stdout, stderr, cancellationToken).ConfigureAwait(false),
                "promotions" => PromotionCommands.Promotions(rest, stdout),
                "sbom" => await StoreCommands.SbomAsync(rest, stdout, cancellationToken).ConfigureAwait(false),
                "release" => await ReleaseCommands.ReleaseAsync(rest, stdout, stderr, cancellationToken).ConfigureAwait(false),
                "rollback" => await ReleaseCommands.RollbackAsync(rest, stdout, stderr, cancellationToken).ConfigureAwait(false),
                "release-instance" => await ReleaseCommands.InstanceAsync(rest, cancellationToken).ConfigureAwait(false),
                _ => throw new UsageException($"kiln: unknown command '{command}' (see 'kiln --help')"),
            };
        }
        catch (UsageException ex)
        {
            stderr.WriteLine(ex.Message);
            return ExitCodes.BadInput;
        }
        catch (DefinitionException ex)
        {
            stderr.WriteLine("error: the definition has " + (ex.Problems.Count == 1 ? "a problem:" : $"{ex.Problems.Count} problems:"));
            foreach (var p in ex.Problems)
            {
                stderr.WriteLine($"  {p}");
            }
            return ExitCodes.BadInput;
        }
        catch (Kiln.Build.Release.ReleaseException ex)
        {
            stderr.WriteLine("error: " + ex.Message);
            return ex.IsBadInput ? ExitCodes.BadInput : ExitCodes.Failed;
        }
        catch (Kiln.Build.Testing.Vm.VmException ex)
        {
            stderr.WriteLine("error: " + ex.Message);
            return ExitCodes.BadInput;
        }
        catch (ExportException ex)
        {
            stderr.WriteLine("error: " + ex.Message);
            return ex.IsBadInput ? ExitCodes.BadInput : ExitCodes.Failed;
        }
        catch (Kiln.Oci.Registry.RegistryException ex)
        {
            // Bad references and unreadable auth files are bad input; the rest (authentication, transfer) failures.
            stderr.WriteLine("error: " + ex.Message);
            return ex.Kind == Kiln.Oci.Registry.RegistryErrorKind.BadInput ? ExitCodes.BadInput : ExitCodes.Failed;
        }
        catch (Kiln.Build.Local.LocalException ex)
        {
            stderr.WriteLine("error: " + ex.Message);
            return ex.IsBadInput ? ExitCodes.BadInput : ExitCodes.Failed;
        }
        catch (Kiln.Build.Testing.Boot.InstanceException ex)
        {
            stderr.WriteLine("error: " + ex.Message);
            return ExitCodes.Failed;
        }
        catch (Kiln.Oci.Image.ImageException ex)
        {
            stderr.WriteLine("error: " + ex.Message);
            return ExitCodes.Failed;
        }
        catch (ArgumentException ex)
        {
            stderr.WriteLine("error: " + ex.Message);
            return ExitCodes.BadInput;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            stderr.WriteLine("interrupted");
            return ExitCodes.Interrupted;
        }
        catch (Kiln.Build.Minimize.MinimizeException ex)
        {
            stderr.WriteLine("error: " + ex.Message);
            return ExitCodes.Failed;
        }
        catch (BuildException ex)
        {
            stderr.WriteLine("error: " + ex.Message);
            if (ex.OutputTail.Count > 0)
            {
                stderr.WriteLine("last output:");
                foreach (var line in ex.OutputTail)
                {
                    stderr.WriteLine("  | " + line);
                }
            }
            return ExitCodes.Failed;
        }
        catch (Exception ex) when (ex is SandboxException or StoreException or IOException or InvalidDataException or InvalidOperationException or UnauthorizedAccessException)
        {
            stderr.WriteLine("error: " + ex.Message);
            if (CliEnvironment.Get("KILN_DEBUG") is { Length: > 0 })
            {
                stderr.WriteLine(ex.ToString());
            }
            return ExitCodes.Failed;
        }
        catch (Exception ex)
        {
            // A bug (a NullReferenceException, say, or a cancellation kiln did not ask for): one line, not an abort.
            return Unexpected.Report(stderr, ex);
        }
    }

    /// <summary>The store folder: KILN_STORE, else /var/lib/kiln.</summary>
    public static string StoreRoot() =>
        CliEnvironment.Get("KILN_STORE") is { Length: > 0 } s ? Path.GetFullPath(s) : "/var/lib/kiln";

    public static DateTimeOffset Epoch()
    {
        var text = CliEnvironment.Get("SOURCE_DATE_EPOCH");
        if (string.IsNullOrEmpty(text))
        {
            return DateTimeOffset.UnixEpoch;
        }
        if (!long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var seconds))
        {
            throw new UsageException($"SOURCE_DATE_EPOCH must be a number of seconds, not '{text}'");
        }
        return DateTimeOffset.FromUnixTimeSeconds(seconds);
    }

    /// <summary>KILN_SCRATCH_SIZE: the most a step's tmpfs may hold (a percentage of RAM, or bytes with k, m or g);
    /// default 50%.</summary>
    public static string ScratchSize()
    {
        var text = CliEnvironment.Get("KILN_SCRATCH_SIZE");
        if (string.IsNullOrEmpty(text))
        {
            return "50%";
        }
        try
        {
            Kiln.Build.Execution.BuildOptions.CheckMemoryScratchSize(text);
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"KILN_SCRATCH_SIZE: {e.Message.Split(" (Parameter")[0]}");
        }
        return text;
    }
}
