using System.Text;
using System.Text.Json;
using Kiln.Build.Execution;
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

    public static string Build(BuildResult result) => Write(w =>
    {
        w.WriteStartObject();
        w.WriteStartArray("images");
        foreach (var image in result.Images)
        {
            w.WriteStartObject();
            w.WriteString("name", image.Name);
            w.WriteString("digest", image.Manifest.Digest.Value);
            w.WriteNumber("stepsRun", image.StepsRun);
            w.WriteNumber("stepsCached", image.StepsCached);
            w.WriteNumber("seconds", Math.Round(image.Duration.TotalSeconds, 3));
            w.WriteStartArray("steps");
            foreach (var s in image.Steps)
            {
                w.WriteStartObject();
                w.WriteNumber("index", s.Index);
                w.WriteString("description", s.Description);
                w.WriteBoolean("cached", s.Cached);
                w.WriteNumber("seconds", Math.Round(s.Duration.TotalSeconds, 3));
                if (s.Layer is { } l)
                {
                    w.WriteString("layer", l.Digest.Value);
                    w.WriteNumber("layerSize", l.Size);
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    });

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
