using System.Globalization;
using System.Text;
using System.Xml;
using Kiln.Build.Execution;

namespace Kiln.Build.Testing;

/// <summary>JUnit XML: one testsuite per image and phase, one testcase per check with its time; failed matchers
/// as a failure with expected and actual, checks that did not run as skipped.</summary>
public static class JUnitReport
{
    public static void Write(Stream output, IEnumerable<TestPhaseReport> phases)
    {
        var list = phases.ToList();
        var settings = new XmlWriterSettings { Indent = true, Encoding = new UTF8Encoding(false), CloseOutput = false };
        using var w = XmlWriter.Create(output, settings);
        w.WriteStartDocument();
        w.WriteStartElement("testsuites");
        w.WriteAttributeString("name", "kiln");
        w.WriteAttributeString("tests", Num(list.Sum(p => p.Checks.Count)));
        w.WriteAttributeString("failures", Num(list.Sum(p => p.Failed)));
        w.WriteAttributeString("time", Time(TimeSpan.FromTicks(list.Sum(p => p.Duration.Ticks))));
        foreach (var p in list)
        {
            w.WriteStartElement("testsuite");
            w.WriteAttributeString("name", $"{p.Image} {p.Phase}");
            w.WriteAttributeString("tests", Num(p.Checks.Count));
            w.WriteAttributeString("failures", Num(p.Failed));
            w.WriteAttributeString("errors", "0");
            w.WriteAttributeString("skipped", Num(p.Checks.Count(c => c.Skipped)));
            w.WriteAttributeString("time", Time(p.Duration));
            w.WriteStartElement("properties");
            Property(w, "image", p.Image);
            Property(w, "phase", p.Phase);
            Property(w, "cached", p.Cached ? "true" : "false");
            w.WriteEndElement();
            foreach (var c in p.Checks)
            {
                w.WriteStartElement("testcase");
                w.WriteAttributeString("classname", $"{p.Image}.{p.Phase}");
                w.WriteAttributeString("name", c.Name);
                w.WriteAttributeString("time", Time(c.Duration));
                if (c.Skipped)
                {
                    w.WriteStartElement("skipped");
                    w.WriteAttributeString("message", p.SkippedBecause ?? "not run");
                    w.WriteEndElement();
                }
                else if (!c.Passed)
                {
                    w.WriteStartElement("failure");
                    w.WriteAttributeString("message", string.Join("; ", c.Failures.Select(f => $"{f.Matcher}: expected {f.Expected}, got {f.Actual}")));
                    w.WriteAttributeString("type", "CheckFailed");
                    w.WriteString(string.Join('\n', c.Failures.Select(f => $"{f.Matcher}\n  expected: {f.Expected}\n  actual:   {f.Actual}")));
                    w.WriteEndElement();
                }
                w.WriteEndElement();
            }
            w.WriteEndElement();
        }
        w.WriteEndElement();
        w.WriteEndDocument();
    }

    /// <summary>Writes the report to <paramref name="path"/> (replacing it: written aside, then renamed).</summary>
    public static void WriteFile(string path, IEnumerable<TestPhaseReport> phases)
    {
        var full = Path.GetFullPath(path);
        var temp = full + ".tmp-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        using (var stream = File.Create(temp))
        {
            Write(stream, phases);
        }
        File.Move(temp, full, overwrite: true);
    }

    private static void Property(XmlWriter w, string name, string value)
    {
        w.WriteStartElement("property");
        w.WriteAttributeString("name", name);
        w.WriteAttributeString("value", value);
        w.WriteEndElement();
    }

    private static string Num(int n) => n.ToString(CultureInfo.InvariantCulture);

    private static string Time(TimeSpan t) => t.TotalSeconds.ToString("0.000", CultureInfo.InvariantCulture);
}
