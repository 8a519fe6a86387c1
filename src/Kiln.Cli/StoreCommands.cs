using Kiln.Build.Store;
using Kiln.Oci;

namespace Kiln.Cli;

/// <summary>Commands that read (or collect) the store: images, inspect, history, verify, gc.</summary>
internal static class StoreCommands
{
    private static readonly Dictionary<string, string> HelpAlias = new() { ["-h"] = "--help" };

    public static async Task<int> ImagesAsync(string[] args, TextWriter stdout, CancellationToken ct)
    {
        var a = Arguments.Parse(args, "images", ["--json", "--help"], [], HelpAlias);
        if (a.Has("--help"))
        {
            stdout.WriteLine(Help.Images);
            return ExitCodes.Ok;
        }
        NoPositionals(a, "images");
        var store = OpenExisting();
        var rows = new List<(string Name, Descriptor Manifest, Manifest M)>();
        foreach (var (name, desc) in store?.Names.ListTags() ?? [])
        {
            var (m, _) = await store!.Content.ReadImageAsync(desc.Digest, ct).ConfigureAwait(false);
            rows.Add((name, desc, m));
        }
        if (a.Has("--json"))
        {
            stdout.WriteLine(JsonOutput.Write(w =>
            {
                w.WriteStartArray();
                foreach (var r in rows)
                {
                    w.WriteStartObject();
                    w.WriteString("name", r.Name);
                    w.WriteString("digest", r.Manifest.Digest.Value);
                    w.WriteNumber("layers", r.M.Layers.Count);
                    w.WriteNumber("size", r.M.Layers.Sum(l => l.Size));
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }));
            return ExitCodes.Ok;
        }
        stdout.WriteLine($"{"NAME",-20} {"DIGEST",-19} {"LAYERS",6} {"SIZE",11}");
        foreach (var r in rows)
        {
            stdout.WriteLine($"{r.Name,-20} {r.Manifest.Digest.Short,-19} {r.M.Layers.Count,6} {BuildRenderer.Size(r.M.Layers.Sum(l => l.Size)),11}");
        }
        return ExitCodes.Ok;
    }

    public static async Task<int> InspectAsync(string[] args, TextWriter stdout, CancellationToken ct)
    {
        var a = Arguments.Parse(args, "inspect", ["--json", "--help"], [], HelpAlias);
        if (a.Has("--help"))
        {
            stdout.WriteLine(Help.Inspect);
            return ExitCodes.Ok;
        }
        var (name, desc, manifest, config) = await LoadImageAsync(a, "inspect", ct).ConfigureAwait(false);
        var layers = LayersWithSteps(manifest, config);
        Kiln.Build.Minimize.MinimizeReport? minimized = null;
        IReadOnlyList<Kiln.Build.Provenance.StoredReferrer> referrers = [];
        using (var store = OpenExisting())
        {
            if (store is not null)
            {
                minimized = new Kiln.Build.Minimize.MinimizeRecords(store).TryReadReport(desc.Digest);
                referrers = await Kiln.Build.Provenance.StoredReferrers.ListAsync(store, desc.Digest, ct).ConfigureAwait(false);
            }
        }
        if (a.Has("--json"))
        {
            stdout.WriteLine(JsonOutput.Write(w =>
            {
                w.WriteStartObject();
                w.WriteString("name", name);
                w.WriteString("digest", desc.Digest.Value);
                w.WriteString("created", config.Created);
                w.WriteString("architecture", config.Architecture);
                w.WriteString("os", config.Os);
                JsonOutput.Config(w, config.Config);
                w.WriteStartArray("layers");
                foreach (var l in layers)
                {
                    w.WriteStartObject();
                    w.WriteString("digest", l.Layer.Digest.Value);
                    w.WriteString("diffId", l.DiffId.Value);
                    w.WriteString("mediaType", l.Layer.MediaType);
                    w.WriteNumber("size", l.Layer.Size);
                    w.WriteString("createdBy", l.CreatedBy);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                if (minimized is not null)
                {
                    w.WriteStartObject("minimized");
                    w.WriteString("from", minimized.FullManifest);
                    w.WriteNumber("bytesBefore", minimized.BytesBefore);
                    w.WriteNumber("bytesAfter", minimized.BytesAfter);
                    w.WriteNumber("filesBefore", minimized.FilesBefore);
                    w.WriteNumber("filesAfter", minimized.FilesAfter);
                    w.WriteNumber("layerBytesBefore", minimized.LayerBytesBefore);
                    w.WriteNumber("layerBytesAfter", minimized.LayerBytesAfter);
                    w.WriteEndObject();
                }
                w.WriteStartArray("referrers");
                foreach (var r in referrers)
                {
                    w.WriteStartObject();
                    w.WriteString("artifactType", r.ArtifactType);
                    w.WriteString("digest", r.Manifest.Digest.Value);
                    w.WriteNumber("size", r.Manifest.Size + r.Layers.Sum(l => l.Size));
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }));
            return ExitCodes.Ok;
        }
        var c = config.Config;
        stdout.WriteLine($"Name:        {name}");
        stdout.WriteLine($"Digest:      {desc.Digest}");
        stdout.WriteLine($"Created:     {config.Created}");
        stdout.WriteLine($"Platform:    {config.Os}/{config.Architecture}");
        stdout.WriteLine($"Entrypoint:  {Show(c.Entrypoint)}");
        stdout.WriteLine($"Cmd:         {Show(c.Cmd)}");
        stdout.WriteLine($"Workdir:     {c.WorkingDir ?? "-"}");
        stdout.WriteLine($"User:        {c.User ?? "-"}");
        stdout.WriteLine($"Expose:      {(c.ExposedPorts is { Count: > 0 } p ? string.Join(' ', p.Keys) : "-")}");
        stdout.WriteLine("Env:");
        foreach (var e in c.Env ?? [])
        {
            stdout.WriteLine($"  {e}");
        }
        stdout.WriteLine("Labels:");
        foreach (var (k, v) in c.Labels ?? new Dictionary<string, string>())
        {
            stdout.WriteLine($"  {k}={v}");
        }
        stdout.WriteLine($"Layers ({layers.Count}, {BuildRenderer.Size(manifest.Layers.Sum(l => l.Size))}):");
        foreach (var l in layers)
        {
            stdout.WriteLine($"  {l.Layer.Digest.Short}  {BuildRenderer.Size(l.Layer.Size),10}  {l.CreatedBy}");
        }
        if (minimized is not null)
        {
            stdout.WriteLine($"Minimized:   from {minimized.FullManifest} ({MinimizeCommand.Describe(minimized)})");
            stdout.WriteLine($"  files      {minimized.FilesBefore} -> {minimized.FilesAfter}");
            stdout.WriteLine($"  size       {BuildRenderer.Size(minimized.BytesBefore)} -> {BuildRenderer.Size(minimized.BytesAfter)}");
            stdout.WriteLine($"  layers     {BuildRenderer.Size(minimized.LayerBytesBefore)} -> {BuildRenderer.Size(minimized.LayerBytesAfter)} (compressed)");
        }
        stdout.WriteLine($"Referrers ({referrers.Count}):");
        foreach (var r in referrers)
        {
            stdout.WriteLine($"  {r.Manifest.Digest.Short}  {BuildRenderer.Size(r.Manifest.Size + r.Layers.Sum(l => l.Size)),10}  {r.ArtifactType}");
        }
        return ExitCodes.Ok;
    }

    public static async Task<int> HistoryAsync(string[] args, TextWriter stdout, CancellationToken ct)
    {
        var a = Arguments.Parse(args, "history", ["--json", "--help"], [], HelpAlias);
        if (a.Has("--help"))
        {
            stdout.WriteLine(Help.History);
            return ExitCodes.Ok;
        }
        var (_, _, manifest, config) = await LoadImageAsync(a, "history", ct).ConfigureAwait(false);
        var rows = new List<(string CreatedBy, Descriptor? Layer)>();
        int li = 0;
        foreach (var h in config.History)
        {
            Descriptor? layer = null;
            if (!h.EmptyLayer && li < manifest.Layers.Count)
            {
                layer = manifest.Layers[li++];
            }
            rows.Add((h.CreatedBy ?? "", layer));
        }
        if (a.Has("--json"))
        {
            stdout.WriteLine(JsonOutput.Write(w =>
            {
                w.WriteStartArray();
                foreach (var r in rows)
                {
                    w.WriteStartObject();
                    w.WriteString("createdBy", r.CreatedBy);
                    if (r.Layer is { } l)
                    {
                        w.WriteString("layer", l.Digest.Value);
                        w.WriteNumber("size", l.Size);
                    }
                    else
                    {
                        w.WriteNull("layer");
                        w.WriteNumber("size", 0);
                    }
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }));
            return ExitCodes.Ok;
        }
        stdout.WriteLine($"{"LAYER",-14} {"SIZE",10}  CREATED BY");
        foreach (var r in rows)
        {
            stdout.WriteLine($"{(r.Layer is { } l ? l.Digest.Short : "-"),-14} {(r.Layer is { } l2 ? BuildRenderer.Size(l2.Size) : "0 B"),10}  {r.CreatedBy}");
        }
        return ExitCodes.Ok;
    }

    public static async Task<int> VerifyAsync(string[] args, TextWriter stdout, CancellationToken ct)
    {
        var a = Arguments.Parse(args, "verify", ["--json", "--help", "--repair"], [], HelpAlias);
        if (a.Has("--help"))
        {
            stdout.WriteLine(Help.Verify);
            return ExitCodes.Ok;
        }
        NoPositionals(a, "verify");
        var store = OpenExisting();
        if (store is null)
        {
            stdout.WriteLine("no store at " + Cli.StoreRoot() + ": nothing to verify");
            return ExitCodes.Ok;
        }
        RepairReport? repair = null;
        if (a.Has("--repair"))
        {
            repair = await store.RepairAsync(ct).ConfigureAwait(false);
        }
        var report = repair?.Found ?? await store.VerifyAsync(ct).ConfigureAwait(false);
        if (a.Has("--json"))
        {
            stdout.WriteLine(JsonOutput.Write(w =>
            {
                w.WriteStartObject();
                w.WriteBoolean("ok", report.Ok);
                w.WriteStartArray("problems");
                foreach (var p in report.Problems)
                {
                    w.WriteStringValue(p.ToString());
                }
                w.WriteEndArray();
                if (repair is not null)
                {
                    w.WriteStartObject("repaired");
                    w.WriteNumber("blobsRemoved", repair.BlobsRemoved);
                    w.WriteNumber("snapshotsRemoved", repair.SnapshotsRemoved);
                    w.WriteNumber("stepEntriesRemoved", repair.StepEntriesRemoved);
                    w.WriteStartArray("rebuild");
                    foreach (var image in repair.ImagesToRebuild)
                    {
                        w.WriteStringValue(image);
                    }
                    w.WriteEndArray();
                    w.WriteEndObject();
                }
                w.WriteEndObject();
            }));
        }
        else
        {
            foreach (var p in report.Problems)
            {
                stdout.WriteLine(p.ToString());
            }
            stdout.WriteLine(report.Ok ? "store is consistent" : $"{report.Problems.Count} problem(s) found");
            if (repair is not null)
            {
                stdout.WriteLine($"repaired: removed {repair.BlobsRemoved} corrupt blob(s), {repair.SnapshotsRemoved} broken snapshot(s), " +
                    $"{repair.StepEntriesRemoved} step cache entr{(repair.StepEntriesRemoved == 1 ? "y" : "ies")}");
                if (repair.ImagesToRebuild.Count > 0)
                {
                    stdout.WriteLine("build again to restore: " + string.Join(", ", repair.ImagesToRebuild));
                }
            }
        }
        return report.Ok ? ExitCodes.Ok : ExitCodes.Failed;
    }

    public static async Task<int> GcAsync(string[] args, TextWriter stdout, CancellationToken ct)
    {
        var a = Arguments.Parse(args, "gc", ["--json", "--help", "--prune-cache"], [], HelpAlias);
        if (a.Has("--help"))
        {
            stdout.WriteLine(Help.Gc);
            return ExitCodes.Ok;
        }
        NoPositionals(a, "gc");
        var store = OpenExisting();
        if (store is null)
        {
            stdout.WriteLine("no store at " + Cli.StoreRoot() + ": nothing to collect");
            return ExitCodes.Ok;
        }
        var r = await store.CollectGarbageAsync(a.Has("--prune-cache"), ct).ConfigureAwait(false);
        if (a.Has("--json"))
        {
            stdout.WriteLine(JsonOutput.Write(w =>
            {
                w.WriteStartObject();
                w.WriteNumber("blobsRemoved", r.BlobsRemoved);
                w.WriteNumber("blobBytesFreed", r.BlobBytesFreed);
                w.WriteNumber("snapshotsRemoved", r.SnapshotsRemoved);
                w.WriteNumber("snapshotBytesFreed", r.SnapshotBytesFreed);
                w.WriteNumber("stepEntriesRemoved", r.StepEntriesRemoved);
                w.WriteNumber("testResultsRemoved", r.TestResultsRemoved);
                w.WriteNumber("referrersRemoved", r.ReferrersRemoved);
                w.WriteNumber("disksRemoved", r.DisksRemoved);
                w.WriteNumber("blobsKept", r.BlobsKept);
                w.WriteNumber("snapshotsKept", r.SnapshotsKept);
                w.WriteNumber("bytesFreed", r.BytesFreed);
                w.WriteEndObject();
            }));
        }
        else
        {
            stdout.WriteLine($"removed {Count(r.BlobsRemoved, "blob")} ({BuildRenderer.Size(r.BlobBytesFreed)}), {Count(r.SnapshotsRemoved, "snapshot")} " +
                $"({BuildRenderer.Size(r.SnapshotBytesFreed)}), {Count(r.StepEntriesRemoved, "step cache entry", "step cache entries")}, " +
                $"{Count(r.TestResultsRemoved, "test result")}, {Count(r.DisksRemoved, "kept disk")}");
            stdout.WriteLine($"kept {Count(r.BlobsKept, "blob")} and {Count(r.SnapshotsKept, "snapshot")}; freed {BuildRenderer.Size(r.BytesFreed)}");
        }
        return ExitCodes.Ok;

        static string Count(int n, string one, string? many = null) =>
            n.ToString(System.Globalization.CultureInfo.InvariantCulture) + " " + (n == 1 ? one : many ?? one + "s");
    }

    public static async Task<int> SbomAsync(string[] args, TextWriter stdout, CancellationToken ct)
    {
        var a = Arguments.Parse(args, "sbom", ["--help"], ["--output"], new Dictionary<string, string> { ["-h"] = "--help", ["-o"] = "--output" });
        if (a.Has("--help"))
        {
            stdout.WriteLine(Help.Sbom);
            return ExitCodes.Ok;
        }
        var output = a.Last("--output");
        PathArguments.Output("sbom", "--output", output);
        var (name, desc, _, _) = await LoadImageAsync(a, "sbom", ct).ConfigureAwait(false);
        using var store = OpenExisting()!;
        using var storeLock = store.AcquireLock(exclusive: false, ct);
        var sbom = await Kiln.Build.Provenance.ProvenanceGate.EnsureSbomAsync(store, name, desc, ct).ConfigureAwait(false)
            ?? throw new UsageException($"kiln sbom: {name} ({desc.Digest}) has no SBOM: it has no dpkg database (/var/lib/dpkg/status)");
        var bytes = await store.Content.ReadBlobAsync(sbom.Layers[0].Digest, ct).ConfigureAwait(false);
        if (output is null)
        {
            await stdout.WriteAsync(System.Text.Encoding.UTF8.GetString(bytes).AsMemory(), ct).ConfigureAwait(false);
        }
        else
        {
            var partial = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(output))!, "." + Path.GetFileName(output) + ".partial");
            await File.WriteAllBytesAsync(partial, bytes, ct).ConfigureAwait(false);
            File.Move(partial, output, overwrite: true);
        }
        return ExitCodes.Ok;
    }

    private static async Task<(string Name, Descriptor Desc, Manifest Manifest, ImageConfig Config)> LoadImageAsync(Arguments a, string command, CancellationToken ct)
    {
        if (a.Positionals.Count != 1)
        {
            throw new UsageException($"kiln {command}: takes one IMAGE (see 'kiln images')");
        }
        var name = a.Positionals[0];
        var store = OpenExisting();
        var desc = store?.Names.TryGetTag(name) ?? throw new UsageException($"kiln {command}: no image named '{name}' in {Cli.StoreRoot()} (see 'kiln images')");
        var (manifest, config) = await store!.Content.ReadImageAsync(desc.Digest, ct).ConfigureAwait(false);
        return (name, desc, manifest, config);
    }

    private static List<(Descriptor Layer, Digest DiffId, string CreatedBy)> LayersWithSteps(Manifest manifest, ImageConfig config)
    {
        var steps = config.History.Where(h => !h.EmptyLayer).Select(h => h.CreatedBy ?? "").ToList();
        var list = new List<(Descriptor, Digest, string)>();
        for (int i = 0; i < manifest.Layers.Count; i++)
        {
            list.Add((manifest.Layers[i], config.RootFs.DiffIds[i], i < steps.Count ? steps[i] : ""));
        }
        return list;
    }

    /// <summary>Read-only commands never create a store.</summary>
    private static KilnStore? OpenExisting()
    {
        var root = Cli.StoreRoot();
        return File.Exists(Path.Combine(root, "oci-layout")) ? KilnStore.Open(root) : null;
    }

    private static void NoPositionals(Arguments a, string command)
    {
        if (a.Positionals.Count > 0)
        {
            throw new UsageException($"kiln {command}: unexpected argument '{a.Positionals[0]}'");
        }
    }

    private static string Show(IReadOnlyList<string>? list) =>
        list is null ? "-" : "[" + string.Join(", ", list.Select(s => "\"" + s + "\"")) + "]";
}
