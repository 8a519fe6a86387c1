using System.Xml.Linq;
using Kiln.Build.Execution;
using Kiln.Build.Testing;

namespace Kiln.Build.Tests.Testing.Reports;

public sealed class JUnitReportTests
{
    private static XDocument Write(params TestPhaseReport[] phases)
    {
        using var ms = new MemoryStream();
        JUnitReport.Write(ms, phases);
        ms.Position = 0;
        return XDocument.Load(ms);
    }

    [Fact]
    public void Each_image_and_phase_is_a_testsuite_and_each_check_a_testcase_with_its_time_and_failures()
    {
        var bake = new TestPhaseReport
        {
            Image = "web",
            Phase = "bake",
            Duration = TimeSpan.FromMilliseconds(1500),
            Checks =
            [
                new CheckReport { Section = "file", Subject = "/a", Duration = TimeSpan.FromMilliseconds(2) },
                new CheckReport
                {
                    Section = "command",
                    Subject = "echo <&>",
                    Duration = TimeSpan.FromMilliseconds(120),
                    Failures = [new CheckFailure("exit-status", "0", "3"), new CheckFailure("stdout", "\"x\"", "(empty)")],
                },
            ],
        };
        var boot = new TestPhaseReport
        {
            Image = "web",
            Phase = "boot",
            Duration = TimeSpan.Zero,
            SkippedBecause = "not available",
            Checks = [new CheckReport { Section = "port", Subject = "tcp:8080", Duration = TimeSpan.Zero, Skipped = true }],
        };

        var root = Write(bake, boot).Root!;

        Assert.Equal("testsuites", root.Name.LocalName);
        Assert.Equal(("3", "1"), (root.Attribute("tests")!.Value, root.Attribute("failures")!.Value));
        var suites = root.Elements("testsuite").ToList();
        Assert.Equal(["web bake", "web boot"], suites.Select(s => s.Attribute("name")!.Value));
        Assert.Equal(("2", "1", "1.500"), (suites[0].Attribute("tests")!.Value, suites[0].Attribute("failures")!.Value, suites[0].Attribute("time")!.Value));
        var cases = suites[0].Elements("testcase").ToList();
        Assert.Equal(["file /a", "command echo <&>"], cases.Select(c => c.Attribute("name")!.Value));
        Assert.Equal(["0.002", "0.120"], cases.Select(c => c.Attribute("time")!.Value));
        Assert.Null(cases[0].Element("failure"));
        var failure = cases[1].Element("failure")!;
        Assert.Contains("exit-status: expected 0, got 3", failure.Attribute("message")!.Value);
        Assert.Contains("expected: \"x\"", failure.Value);
        Assert.Equal("1", suites[1].Attribute("skipped")!.Value);
        Assert.Equal("not available", suites[1].Element("testcase")!.Element("skipped")!.Attribute("message")!.Value);
    }
}
