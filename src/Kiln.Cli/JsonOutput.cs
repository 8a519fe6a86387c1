using System.Text;
using System.Text.Json;
using Kiln.Build.Execution;
using Kiln.Build.Exporters;
using Kiln.Oci;

namespace Kiln.Cli;

/// <summary>Machine-readable output, written with Utf8JsonWriter (no reflection, NativeAOT-safe).</summary>
internal static class JsonOutput
{
    public static string Write(Action<Utf8JsonWriter> body)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            body(w);
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    public static string Build(BuildResult result, IReadOnlyList<OutputResult>? outputs = null,
        IReadOnlyList<Kiln.Build.Services.PackageResult>? packages = null) => Write(w =>
    {
        w.WriteStartObject();
        w.WriteStartArray("images");
        foreach (var image in result.Images)
        {
            w.WriteStartObject();
            w.WriteString("name", image.Name);
            w.WriteString("digest", image.Manifest.Digest.Value);
            if (image.BaseDigest is { } baseDigest)
            {
                w.WriteString("baseDigest", baseDigest.Value);
            }
            w.WriteNumber("stepsRun", image.StepsRun);
            w.WriteNumber("stepsCached", image.StepsCached);
            w.WriteNumber("stepsRemote", image.Steps.Count(s => s.Remote));
            w.WriteNumber("seconds", Math.Round(image.Duration.TotalSeconds, 3));
            w.WriteStartArray("steps");
            foreach (var s in image.Steps)
            {
                w.WriteStartObject();
                w.WriteNumber("index", s.Index);
                w.WriteString("description", s.Description);
                w.WriteBoolean("cached", s.Cached);
                w.WriteBoolean("remote", s.Remote);
                w.WriteNumber("seconds", Math.Round(s.Duration.TotalSeconds, 3));
                if (s.Layer is { } l)
                {
                    w.WriteString("layer", l.Digest.Value);
                    w.WriteNumber("layerSize", l.Size);
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteBoolean("rejected", image.Rejected);
            if (image.Minimized is { } m)
            {
                w.WriteStartObject("minimized");
                w.WriteString("fullDigest", image.FullManifest?.Digest.Value);
                w.WriteBoolean("cached", m.Cached);
                w.WriteNumber("filesBefore", m.FilesBefore);
                w.WriteNumber("filesAfter", m.FilesAfter);
                w.WriteNumber("bytesBefore", m.BytesBefore);
                w.WriteNumber("bytesAfter", m.BytesAfter);
                w.WriteEndObject();
            }
            Tests(w, image.Tests.Phases);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartArray("skipped");
        foreach (var s in result.Skipped)
        {
            w.WriteStartObject();
            w.WriteString("name", s.Name);
            w.WriteString("because", s.Because);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartArray("outputs");
        foreach (var o in outputs ?? [])
        {
            Output(w, o);
        }
        w.WriteEndArray();
        if (result.RemoteCache is { } cache)
        {
            RemoteCache(w, cache);
        }
        if (packages is { Count: > 0 })
        {
            w.WriteStartArray("services");
            foreach (var p in packages)
            {
                w.WriteStartObject();
                w.WriteString("name", p.Service);
                w.WriteString("package", p.Digest.Value);
                w.WriteNumber("size", p.Size);
                w.WriteBoolean("changed", p.Changed);
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        w.WriteBoolean("passed", result.Passed);
        w.WriteEndObject();
    });

    private static void RemoteCache(Utf8JsonWriter w, RemoteCacheSummary c)
    {
        w.WriteStartObject("remoteCache");
        w.WriteStartArray("from");
        foreach (var from in c.From)
        {
            w.WriteStringValue(from);
        }
        w.WriteEndArray();
        if (c.To is { } to)
        {
            w.WriteString("to", to);
        }
        w.WriteNumber("stepsFound", c.StepsFound);
        w.WriteNumber("testResultsFound", c.TestResultsFound);
        w.WriteNumber("blobsFetched", c.BlobsFetched);
        w.WriteNumber("bytesFetched", c.BytesFetched);
        w.WriteNumber("entriesPushed", c.EntriesPushed);
        w.WriteNumber("entriesPresent", c.EntriesPresent);
        w.WriteNumber("blobsPushed", c.BlobsPushed);
        w.WriteNumber("bytesPushed", c.BytesPushed);
        w.WriteNumber("blobsSkipped", c.BlobsSkipped);
        w.WriteNumber("blobsMounted", c.BlobsMounted);
        w.WriteStartArray("unavailable");
        foreach (var u in c.Unavailable)
        {
            w.WriteStringValue(u);
        }
        w.WriteEndArray();
        if (c.ExportError is { } exportError)
        {
            w.WriteString("exportError", exportError);
        }
        w.WriteEndObject();
    }

    public static void Output(Utf8JsonWriter w, OutputResult o)
    {
        w.WriteStartObject();
        w.WriteString("image", o.Image);
        w.WriteString("format", o.Format);
        w.WriteString("path", o.Path);
        w.WriteBoolean("upToDate", o.UpToDate);
        w.WriteBoolean("incremental", o.Incremental);
        w.WriteBoolean("patched", o.Patched);
        w.WriteNumber("bytes", o.Bytes);
        w.WriteNumber("bytesWritten", o.BytesWritten);
        w.WriteNumber("seconds", Math.Round(o.Duration.TotalSeconds, 3));
        if (o.Detail is { } detail)
        {
            w.WriteString("detail", detail);
        }
        w.WriteEndObject();
    }

    public static void Tests(Utf8JsonWriter w, IEnumerable<TestPhaseReport> phases)
    {
        w.WriteStartArray("tests");
        foreach (var p in phases)
        {
            w.WriteStartObject();
            w.WriteString("phase", p.Phase);
            w.WriteBoolean("passed", p.Passed);
            w.WriteBoolean("cached", p.Cached);
            w.WriteBoolean("remote", p.Remote);
            if (p.SkippedBecause is { } why)
            {
                w.WriteString("skipped", why);
            }
            w.WriteNumber("seconds", Math.Round(p.Duration.TotalSeconds, 3));
            w.WriteStartArray("checks");
            foreach (var c in p.Checks)
            {
                w.WriteStartObject();
                w.WriteString("name", c.Name);
                w.WriteBoolean("passed", c.Passed);
                w.WriteBoolean("skipped", c.Skipped);
                w.WriteNumber("seconds", Math.Round(c.Duration.TotalSeconds, 3));
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
        w.WriteEndArray();
    }

    public static void Config(Utf8JsonWriter w, ContainerConfig c)
    {
        w.WriteStartObject("config");
        StringList(w, "entrypoint", c.Entrypoint);
        StringList(w, "cmd", c.Cmd);
        StringList(w, "env", c.Env);
        if (c.WorkingDir is { } wd)
        {
            w.WriteString("workdir", wd);
        }
        if (c.User is { } u)
        {
            w.WriteString("user", u);
        }
        StringList(w, "expose", c.ExposedPorts?.Keys.ToList());
        if (c.Labels is { } labels)
        {
            w.WriteStartObject("labels");
            foreach (var (k, v) in labels)
            {
                w.WriteString(k, v);
            }
            w.WriteEndObject();
        }
        if (c.StopSignal is { } sig)
        {
            w.WriteString("stopSignal", sig);
        }
        w.WriteEndObject();
    }

    private static void StringList(Utf8JsonWriter w, string name, IReadOnlyList<string>? list)
    {
        if (list is null)
        {
            return;
        }
        w.WriteStartArray(name);
        foreach (var s in list)
        {
            w.WriteStringValue(s);
        }
        w.WriteEndArray();
    }
}
