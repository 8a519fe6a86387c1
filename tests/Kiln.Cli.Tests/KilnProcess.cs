using System.Diagnostics;
using System.Text;

namespace Kiln.Cli.Tests;

/// <summary>Runs the kiln command (this build's kiln.dll) as a child process against a given store.</summary>
public static class KilnProcess
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public string All => Stdout + Stderr;
    }

    public static string Dll => Path.Combine(AppContext.BaseDirectory, "kiln.dll");

    /// <summary>The kiln the tests run: this checkout's NativeAOT <c>out/kiln</c>, what users run, built once per test
    /// run by scripts/build-tool.sh when a source changed (the README's command, which the examples/web fixture runs,
    /// builds the same binary). Under the JIT every kiln process spent much of its CPU compiling itself,
    /// and the tests start hundreds. <c>KILN_TEST_DLL=1</c> (set by <c>./test --fast</c>) runs this build's kiln.dll
    /// instead, so the edit loop does not wait for a NativeAOT build.</summary>
    private static readonly Lazy<string?> s_binary = new(() =>
    {
        if (Environment.GetEnvironmentVariable("KILN_TEST_DLL") is { Length: > 0 })
        {
            return null;
        }
        var root = ExampleWebFixture.RepoRoot;
        // The README command's time-out, not a host tool's: a NativeAOT build on a busy 2-core host passes 5 minutes.
        var psi = new ProcessStartInfo(Path.Combine(root, "scripts", "build-tool.sh"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        var build = Run(psi, TimeSpan.FromMinutes(15));
        if (build.ExitCode != 0)
        {
            throw new InvalidOperationException("scripts/build-tool.sh failed: " + build.All);
        }
        return Path.Combine(root, "out", "kiln");
    });

    /// <summary>Builds out/kiln now if it is to be used and is not current (once per test run).</summary>
    public static void EnsureBinary() => _ = s_binary.Value;

    public static ProcessStartInfo StartInfo(string store, params string[] args)
    {
        var binary = s_binary.Value;
        var psi = new ProcessStartInfo(binary ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        if (binary is null)
        {
            psi.ArgumentList.Add(Dll);
            // Under the JIT a kiln process is mostly compiling itself; tier-0 code that also counts its calls for a
            // later tier-1 (dynamic PGO) is slower and gains nothing in processes this short.
            psi.Environment["DOTNET_TieredPGO"] = "0";
        }
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        psi.Environment["KILN_STORE"] = store;
        psi.Environment.Remove("SOURCE_DATE_EPOCH");
        psi.Environment["TERM"] = "dumb";
        // Tests kill kiln on purpose; a killed runtime would leave its diagnostics socket in /tmp.
        psi.Environment["DOTNET_EnableDiagnostics"] = "0";
        return psi;
    }

    /// <summary>Runs kiln once. In the fast tier (<c>KILN_TEST_DLL=1</c>) the command runs in this process, through
    /// <see cref="Cli.RunAsync(string[], TextWriter, TextWriter, IReadOnlyDictionary{string, string?}, CancellationToken)"/>
    /// with the environment a child would get, so its code is compiled once per test run rather than once per command:
    /// under the JIT a kiln process spends most of its time compiling itself. <c>./test</c> (CI) runs the NativeAOT
    /// binary as a process for every command, as users run it; <c>KILN_TEST_PROCESS=1</c> makes the fast tier do the
    /// same. Tests about processes themselves (signals, kill -9, several kilns on one store) use
    /// <see cref="RunProcess"/> or <see cref="StartInfo"/>.</summary>
    public static Result Run(string store, params string[] args)
    {
        var psi = StartInfo(store, args);
        return InProcess ? RunInProcess(psi, TimeSpan.FromMinutes(8)) : Run(psi, TimeSpan.FromMinutes(8));
    }

    /// <summary>Runs kiln as a process, also in the fast tier.</summary>
    public static Result RunProcess(string store, params string[] args) => Run(StartInfo(store, args), TimeSpan.FromMinutes(8));

    private static bool InProcess =>
        Environment.GetEnvironmentVariable("KILN_TEST_DLL") is { Length: > 0 }
        && Environment.GetEnvironmentVariable("KILN_TEST_PROCESS") is not { Length: > 0 };

    private static Result RunInProcess(ProcessStartInfo psi, TimeSpan timeout)
    {
        var args = psi.ArgumentList.Skip(1).ToArray(); // after kiln.dll
        var environment = psi.Environment.ToDictionary(e => e.Key, e => e.Value, StringComparer.Ordinal);
        // The build's renderer and tests may write from several threads, as they may to a process's stdout.
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var outWriter = TextWriter.Synchronized(stdout);
        var errWriter = TextWriter.Synchronized(stderr);
        using var cts = new CancellationTokenSource(timeout);
        // On the thread pool, so that a test's synchronization context never holds the command's continuations.
        int code = Task.Run(() => Cli.RunAsync(args, outWriter, errWriter, environment, cts.Token)).GetAwaiter().GetResult();
        if (cts.IsCancellationRequested)
        {
            throw new TimeoutException($"kiln {string.Join(' ', args)} did not finish in {timeout}");
        }
        return new Result(code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Runs <c>./kiln ARGS</c> from the repository root, exactly as README.md says: the script installs
    /// what it needs, builds the NativeAOT binary when the sources changed, and runs it.</summary>
    public static Result RunReadmeCommand(string repoRoot, string store, params string[] args)
    {
        var psi = StartInfo(store, args);
        if (psi.FileName == "dotnet")
        {
            psi.ArgumentList.RemoveAt(0);
        }
        psi.FileName = Path.Combine(repoRoot, "kiln");
        psi.WorkingDirectory = repoRoot;
        return Run(psi, TimeSpan.FromMinutes(15));
    }

    public static Result Run(ProcessStartInfo psi, TimeSpan timeout)
    {
        using var p = new Process { StartInfo = psi };
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (stdout) { stdout.AppendLine(e.Data); } } };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (stderr) { stderr.AppendLine(e.Data); } } };
        p.Start();
        p.StandardInput.Close();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
            throw new TimeoutException($"kiln {string.Join(' ', psi.ArgumentList.Skip(psi.FileName == "dotnet" ? 1 : 0))} did not finish in {timeout}");
        }
        p.WaitForExit();
        return new Result(p.ExitCode, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Runs a host tool and returns its exit code and output.</summary>
    public static Result Tool(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        return Run(psi, TimeSpan.FromMinutes(5));
    }
}
