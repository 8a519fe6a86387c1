using System.Text.Json;
using Kiln.Build.Execution;
using Kiln.Oci;

namespace Kiln.Build.Testing;

/// <summary>A phase's results as stored in the result cache (<c>kiln/tests/KEY.json</c>), read and written without reflection.</summary>
internal static class TestResultJson
{
    public static byte[] Write(TestPhaseReport report, Digest manifest, Digest spec)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("image", report.Image);
            w.WriteString("manifest", manifest.Value);
            w.WriteString("spec", spec.Value);
            w.WriteString("phase", report.Phase);
            w.WriteBoolean("passed", report.Passed);
            w.WriteNumber("seconds", report.Duration.TotalSeconds);
            w.WriteStartArray("checks");
            foreach (var c in report.Checks)
            {
                w.WriteStartObject();
                w.WriteString("section", c.Section);
                w.WriteString("subject", c.Subject);
                w.WriteNumber("seconds", c.Duration.TotalSeconds);
                w.WriteStartArray("failures");
                foreach (var f in c.Failures)
                {
                    w.WriteStartObject();
                    w.WriteString("matcher", f.Matcher);
                    w.WriteString("expected", f.Expected);
                    w.WriteString("actual", f.Actual);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return ms.ToArray();
    }

    /// <summary>The stored report (named for <paramref name="image"/>), or null when absent or unreadable (then it runs again).</summary>
    public static TestPhaseReport? Read(byte[]? json, string image)
    {
        if (json is null)
        {
            return null;
        }
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            var checks = root.GetProperty("checks").EnumerateArray().Select(c => new CheckReport
            {
                Section = c.GetProperty("section").GetString()!,
                Subject = c.GetProperty("subject").GetString()!,
                Duration = TimeSpan.FromSeconds(c.GetProperty("seconds").GetDouble()),
                Failures = [.. c.GetProperty("failures").EnumerateArray().Select(f => new CheckFailure(
                    f.GetProperty("matcher").GetString()!, f.GetProperty("expected").GetString()!, f.GetProperty("actual").GetString()!))],
            }).ToList();
            return new TestPhaseReport
            {
                Image = image,
                Phase = root.GetProperty("phase").GetString()!,
                Duration = TimeSpan.FromSeconds(root.GetProperty("seconds").GetDouble()),
                Checks = checks,
            };
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or NullReferenceException)
        {
            return null;
        }
    }
}
