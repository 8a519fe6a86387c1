using Kiln.Build.Testing;
using Kiln.Build.Testing.Spec;

namespace Kiln.Cli;

/// <summary><c>kiln test IMAGE</c>: runs the image's spec again against the image the store names.</summary>
internal static class TestCommand
{
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        var a = Arguments.Parse(args, "test", ["--json", "--verbose", "--help"], ["--phase", "--junit", "--file"],
            new Dictionary<string, string> { ["-f"] = "--file", ["-v"] = "--verbose", ["-h"] = "--help" });
        if (a.Has("--help"))
        {
            stdout.Write(Help.Test);
            return ExitCodes.Ok;
        }
        if (a.Positionals.Count != 1)
        {
            throw new UsageException("kiln test: takes one IMAGE (see 'kiln test --help')");
        }
        TestPhase? phase = a.Last("--phase") switch
        {
            null => null,
            "bake" => TestPhase.Bake,
            "boot" => TestPhase.Boot,
            var other => throw new UsageException($"kiln test: --phase takes bake or boot, not '{other}'"),
        };
        bool json = a.Has("--json");
        var renderer = new BuildRenderer(json ? stderr : stdout, a.Has("--verbose"));
        var options = new TestOptions { UseCache = false, Phase = phase, Epoch = Cli.Epoch() };
        var result = await StoredImageTests.RunAsync(a.Last("--file") ?? ".", Cli.StoreRoot(), a.Positionals[0], options, renderer, ct).ConfigureAwait(false);
        if (a.Last("--junit") is { } junit)
        {
            JUnitReport.WriteFile(junit, result.Phases);
        }
        if (json)
        {
            stdout.WriteLine(JsonOutput.Write(w =>
            {
                w.WriteStartObject();
                w.WriteString("image", a.Positionals[0]);
                w.WriteBoolean("passed", result.Passed);
                JsonOutput.Tests(w, result.Phases);
                w.WriteEndObject();
            }));
        }
        if (!result.Passed)
        {
            BuildRenderer.Failures(stderr, result.Phases);
            return ExitCodes.Failed;
        }
        if (result.Phases.Count == 0)
        {
            stderr.WriteLine($"kiln test: {a.Positionals[0]} has no checks for that phase");
        }
        return ExitCodes.Ok;
    }
}
