using Kiln.Build.Minimize;
using Kiln.Build.Store;

namespace Kiln.Cli;

/// <summary><c>kiln minimize-report IMAGE</c>: what minimizing IMAGE kept and dropped, by package.</summary>
internal static class MinimizeCommand
{
    public static int Report(string[] args, TextWriter stdout)
    {
        var a = Arguments.Parse(args, "minimize-report", ["--json", "--help"], [], new Dictionary<string, string> { ["-h"] = "--help" });
        if (a.Has("--help"))
        {
            stdout.WriteLine(Help.MinimizeReport);
            return ExitCodes.Ok;
        }
        if (a.Positionals.Count != 1)
        {
            throw new UsageException("kiln minimize-report: takes one IMAGE (a minimized image: NAME, or NAME.rejected when its retest failed)");
        }
        var name = a.Positionals[0];
        var root = Cli.StoreRoot();
        using var store = File.Exists(Path.Combine(root, "oci-layout")) ? KilnStore.Open(root) : null;
        var desc = store?.Names.TryGetTag(name) ?? throw new UsageException($"kiln minimize-report: no image named '{name}' in {root} (see 'kiln images')");
        var report = new MinimizeRecords(store!).TryReadReport(desc.Digest)
            ?? throw new UsageException("kiln minimize-report: " + MinimizeException.NoReport(name).Message);
        if (a.Has("--json"))
        {
            stdout.WriteLine(System.Text.Json.JsonSerializer.Serialize(report, MinimizeReportJson.Default.MinimizeReport));
            return ExitCodes.Ok;
        }
        stdout.WriteLine($"Image:     {name} ({report.Manifest}), minimized from {report.FullManifest}");
        stdout.WriteLine($"How:       {Describe(report)}");
        stdout.WriteLine($"Files:     {report.FilesBefore} -> {report.FilesAfter}, {BuildRenderer.Size(report.BytesBefore)} -> {BuildRenderer.Size(report.BytesAfter)}");
        stdout.WriteLine($"Layers:    {BuildRenderer.Size(report.LayerBytesBefore)} -> {BuildRenderer.Size(report.LayerBytesAfter)} (compressed)");
        stdout.WriteLine($"Retest:    {(report.Passed switch { true => "passed", false => "FAILED", null => "not run" })}");
        foreach (var f in report.Failures)
        {
            stdout.WriteLine($"  failed: {f.Check}");
            foreach (var why in f.Failures)
            {
                stdout.WriteLine($"    {why}");
            }
            foreach (var file in f.DroppedNear)
            {
                stdout.WriteLine($"    dropped near it: {file}");
            }
        }
        stdout.WriteLine("Kept, by package:");
        foreach (var p in report.Kept)
        {
            stdout.WriteLine($"  {p.Package,-32} {p.Files.Count,6} files {BuildRenderer.Size(p.Bytes),10}");
        }
        stdout.WriteLine("Dropped, by package:");
        foreach (var p in report.Dropped)
        {
            stdout.WriteLine($"  {p.Package,-32} {p.Files.Count,6} files {BuildRenderer.Size(p.Bytes),10}");
            foreach (var file in p.Files.Take(5))
            {
                stdout.WriteLine($"    {file}");
            }
            if (p.Files.Count > 5)
            {
                stdout.WriteLine($"    ... {p.Files.Count - 5} more (--json lists them all)");
            }
        }
        return ExitCodes.Ok;
    }

    internal static string Describe(MinimizeReport r) =>
        string.Join(", ", new[]
        {
            r.Profiles.Count > 0 ? "profiles " + string.Join(' ', r.Profiles) : null,
            r.FromTests ? $"from tests ({r.Recorded} paths recorded)" : null,
            r.Keep.Count > 0 ? "keep " + string.Join(' ', r.Keep) : null,
        }.OfType<string>());
}

[System.Text.Json.Serialization.JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase)]
[System.Text.Json.Serialization.JsonSerializable(typeof(MinimizeReport))]
internal sealed partial class MinimizeReportJson : System.Text.Json.Serialization.JsonSerializerContext;
