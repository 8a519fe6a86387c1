using System.Globalization;
using System.Text.Json;
using Kiln.Build.Execution;
using Kiln.Build.Store;
using Kiln.Oci;

namespace Kiln.Build.Services;

/// <summary>One run of a pair's test: the pair, where it ran (<c>boot</c>: systemd-nspawn; <c>vm</c>: qemu), whether
/// it passed, when, the specs it ran and each check's outcome.</summary>
public sealed record PairRecord
{
    public required ServicePair Pair { get; init; }
    public required string Phase { get; init; }
    public required bool Passed { get; init; }
    public required DateTimeOffset TestedAt { get; init; }
    public required TimeSpan Duration { get; init; }
    public Digest? ServiceSpec { get; init; }
    public Digest? ImageSpec { get; init; }
    public IReadOnlyList<CheckReport> Checks { get; init; } = [];
}

/// <summary>Tested pairs, <c>kiln/pairs/KEY.json</c> (KEY over the pair's digest and the phase): the latest run of
/// each pair in each phase. Each record names the image's manifest, so gc drops the records of images that are gone.</summary>
public sealed class PairStore
{
    private readonly ImageRecords _records;

    public PairStore(KilnStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        _records = store.ImageRecords(KilnStore.PairsFolder);
    }

    public async Task WriteAsync(PairRecord record, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(record);
        var name = Key(record.Pair.Digest, record.Phase) + ".json";
        try
        {
            await _records.WriteAsync(name, Serialize(record), ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw StoreException.Io($"writing '{Path.Combine(_records.Dir, name)}'", e);
        }
    }

    /// <summary>Every record, oldest first (unreadable ones are passed over).</summary>
    public IReadOnlyList<PairRecord> All()
    {
        if (!Directory.Exists(_records.Dir))
        {
            return [];
        }
        var list = new List<PairRecord>();
        foreach (var file in Directory.EnumerateFiles(_records.Dir, "*.json"))
        {
            try
            {
                if (Parse(File.ReadAllBytes(file)) is { } r)
                {
                    list.Add(r);
                }
            }
            catch (Exception e) when (e is IOException or JsonException or FormatException or KeyNotFoundException or InvalidOperationException)
            {
                // A torn or foreign record names no pair: passed over, and gc removes it.
            }
        }
        return [.. list.OrderBy(r => r.TestedAt).ThenBy(r => r.Pair.Service, StringComparer.Ordinal)];
    }

    /// <summary>The passing record of <paramref name="pair"/> in <paramref name="phase"/> (any phase when null), or null.</summary>
    public PairRecord? Passing(ServicePair pair, string? phase = null) =>
        All().LastOrDefault(r => r.Passed && r.Pair.Digest == pair.Digest && (phase is null || r.Phase == phase));

    /// <summary>The digest of the stored record of <paramref name="pair"/> in <paramref name="phase"/> (the bytes of
    /// <c>kiln/pairs/KEY.json</c>, which a promotion names), or null when there is none.</summary>
    public Digest? RecordDigest(ServicePair pair, string phase)
    {
        ArgumentNullException.ThrowIfNull(pair);
        var path = Path.Combine(_records.Dir, Key(pair.Digest, phase) + ".json");
        try
        {
            return File.Exists(path) ? Digest.Compute(File.ReadAllBytes(path)) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw StoreException.Io($"reading '{path}'", e);
        }
    }

    private static string Key(Digest pair, string phase) =>
        Digest.Compute(System.Text.Encoding.UTF8.GetBytes($"{pair.Value}\n{phase}\n")).Hex;

    internal static byte[] Serialize(PairRecord r)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("manifest", r.Pair.Image.Value); // the store's records all name their image's manifest (gc)
            Write(w, r);
            w.WriteEndObject();
        }
        return buffer.ToArray();
    }

    /// <summary>The record's fields (without the outer object), as <c>kiln pairs --json</c> shows them too.</summary>
    public static void Write(Utf8JsonWriter w, PairRecord r)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(r);
        w.WriteString("service", r.Pair.Service);
        w.WriteString("imageName", r.Pair.ImageName);
        w.WriteString("image", r.Pair.Image.Value);
        w.WriteString("package", r.Pair.Package.Value);
        w.WriteString("config", r.Pair.Config.Value);
        w.WriteString("pair", r.Pair.Digest.Value);
        w.WriteString("phase", r.Phase);
        w.WriteBoolean("passed", r.Passed);
        w.WriteString("testedAt", r.TestedAt.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture));
        w.WriteNumber("durationMs", (long)r.Duration.TotalMilliseconds);
        if (r.ServiceSpec is { } s)
        {
            w.WriteString("serviceSpec", s.Value);
        }
        if (r.ImageSpec is { } i)
        {
            w.WriteString("imageSpec", i.Value);
        }
        w.WriteStartArray("checks");
        foreach (var c in r.Checks)
        {
            w.WriteStartObject();
            w.WriteString("section", c.Section);
            w.WriteString("subject", c.Subject);
            w.WriteBoolean("passed", c.Passed);
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
    }

    internal static PairRecord? Parse(byte[] json)
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        string S(string name) => root.GetProperty(name).GetString() ?? throw new FormatException($"`{name}` is null");
        Digest? D(string name) => root.TryGetProperty(name, out var v) && Digest.TryParse(v.GetString(), out var d) ? d : null;
        var pair = new ServicePair(S("service"), S("imageName"), Digest.Parse(S("image")), Digest.Parse(S("package")), Digest.Parse(S("config")));
        var checks = root.TryGetProperty("checks", out var cs)
            ? cs.EnumerateArray().Select(c => new CheckReport
            {
                Section = c.GetProperty("section").GetString()!,
                Subject = c.GetProperty("subject").GetString()!,
                Duration = TimeSpan.Zero,
                Failures = [.. c.GetProperty("failures").EnumerateArray().Select(f => new CheckFailure(
                    f.GetProperty("matcher").GetString()!, f.GetProperty("expected").GetString()!, f.GetProperty("actual").GetString()!))],
            }).ToList()
            : [];
        return new PairRecord
        {
            Pair = pair,
            Phase = S("phase"),
            Passed = root.GetProperty("passed").GetBoolean(),
            TestedAt = DateTimeOffset.Parse(S("testedAt"), CultureInfo.InvariantCulture),
            Duration = TimeSpan.FromMilliseconds(root.GetProperty("durationMs").GetInt64()),
            ServiceSpec = D("serviceSpec"),
            ImageSpec = D("imageSpec"),
            Checks = checks,
        };
    }
}
