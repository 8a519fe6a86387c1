using System.Text.Json;

namespace Kiln.Cli.Tests;

/// <summary>No unhandled exception ends kiln (issue 18): a bug's exception, injected with the test-only
/// KILN_TEST_FAULT, exits 1 with one line naming the operation and the error, and leaves a store that verifies.</summary>
public sealed class UnexpectedErrorTests : IDisposable
{
    private readonly TempDir _store = new("kiln-fault-store");

    public void Dispose() => _store.Dispose();

    private static TinyContext Context() => new(
        "images:\n  tiny:\n    from: scratch\n    steps:\n" + TinyContext.RootStep +
        "      - run: echo first line; echo second line\n");

    private KilnProcess.Result Build(TinyContext ctx, string? fault, params string[] extra)
    {
        var psi = KilnProcess.StartInfo(_store.Path, ["build", ctx.Path, .. extra]);
        if (fault is not null)
        {
            psi.Environment["KILN_TEST_FAULT"] = fault;
        }
        return KilnProcess.Run(psi, TimeSpan.FromMinutes(5));
    }

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>step-start: on the build's own path; step-output: in the handler of a step's output line, on the
    /// runtime's thread that reads it (an abort before); ",thread": on a thread of its own, where only the last
    /// resort catches it.</summary>
    [Theory]
    [InlineData("step-start@2", "")]
    [InlineData("step-output", "")]
    [InlineData("step-start@2,thread", " on a background thread")]
    [InlineData("step-output,thread", " on a background thread")]
    public void An_unexpected_exception_exits_1_with_one_line_and_the_store_verifies(string fault, string where)
    {
        using var ctx = Context();
        var r = Build(ctx, fault);

        Assert.True(r.ExitCode == 1, $"exit {r.ExitCode}\n{r.All}");
        var line = Assert.Single(Lines(r.Stderr));
        Assert.StartsWith("error: kiln build failed while at tiny step 2 (run echo first line; echo second line): ", line);
        Assert.Contains($"unexpected NullReferenceException{where}: injected fault at step-", line);
        Assert.DoesNotContain("   at ", r.All);

        var verify = KilnProcess.Run(_store.Path, "verify");
        Assert.True(verify.ExitCode == 0, verify.All);
        if (where.Length == 0)
        {
            // The build ended its own way: it cleaned up as for any failure.
            Leftovers.AssertNone(_store.Path);
        }
        // The next build (no fault) cleans what an ended process left, and succeeds.
        var again = Build(ctx, null);
        Assert.True(again.ExitCode == 0, again.All);
        Leftovers.AssertNone(_store.Path);
    }

    [Fact]
    public void Verbose_shows_the_stack_of_an_unexpected_exception()
    {
        using var ctx = Context();
        var r = Build(ctx, "step-start@2", "-v");
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith("error: kiln build failed while at tiny step 2", Lines(r.Stderr)[0]);
        Assert.Contains("at Kiln.Build.Execution.Executor", r.Stderr);
    }

    [Fact]
    public void The_trace_holds_the_stack_of_an_unexpected_exception()
    {
        using var ctx = Context();
        var trace = Path.Combine(ctx.Path, "trace.json");
        var r = Build(ctx, "step-start@2", "--trace", trace);
        Assert.Equal(1, r.ExitCode);
        Assert.Single(Lines(r.Stderr));
        using var doc = JsonDocument.Parse(File.ReadAllText(trace));
        var error = Assert.Single(doc.RootElement.GetProperty("traceEvents").EnumerateArray(), e => e.GetProperty("name").GetString() == "error");
        Assert.Equal("i", error.GetProperty("ph").GetString());
        Assert.StartsWith("NullReferenceException: injected fault", error.GetProperty("args").GetProperty("error").GetString());
        Assert.Contains("at Kiln.Build.Execution.Executor", error.GetProperty("args").GetProperty("stack").GetString());
    }

    [Fact]
    public void A_fault_on_a_thread_of_its_own_still_writes_the_trace_with_its_stack()
    {
        using var ctx = Context();
        var trace = Path.Combine(ctx.Path, "trace.json");
        var r = Build(ctx, "step-output,thread", "--trace", trace);
        Assert.Equal(1, r.ExitCode);
        Assert.Single(Lines(r.Stderr));
        using var doc = JsonDocument.Parse(File.ReadAllText(trace));
        var error = Assert.Single(doc.RootElement.GetProperty("traceEvents").EnumerateArray(), e => e.GetProperty("name").GetString() == "error");
        Assert.Contains("injected fault at step-output", error.GetProperty("args").GetProperty("stack").GetString());
        // The process ended without its cleanup (its step's tmpfs is still mounted); the next build cleans that up,
        // as it must after any killed kiln, and nothing stays mounted on the host after the test.
        var again = Build(ctx, null);
        Assert.True(again.ExitCode == 0, again.All);
        Leftovers.AssertNone(_store.Path);
    }

    [Fact]
    public void An_unknown_fault_point_is_bad_input()
    {
        using var ctx = Context();
        var r = Build(ctx, "nowhere");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("KILN_TEST_FAULT: unknown point 'nowhere'", r.Stderr);
    }
}
