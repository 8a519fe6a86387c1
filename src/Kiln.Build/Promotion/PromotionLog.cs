using System.Globalization;
using System.Text.Json;
using Kiln.Build.Store;
using Kiln.Oci;

namespace Kiln.Build.Promotion;

/// <summary>The store's append-only promotion log, <c>kiln/promotions.jsonl</c>: one JSON object per line, oldest first.
/// A line counts once its newline is written: a last line without one (a promotion torn by a crash) is ignored by
/// readers and cut off by the next append, so a crash at any instant loses at most the promotion being written.</summary>
public sealed class PromotionLog
{
    private readonly string _lockPath;

    public PromotionLog(KilnStore store)
        : this((store ?? throw new ArgumentNullException(nameof(store))).KilnFile(KilnStore.PromotionLogFile))
    {
    }

    /// <summary>A log at <paramref name="path"/> (its folder must exist); the store's is
    /// <see cref="PromotionLog(KilnStore)"/>.</summary>
    public PromotionLog(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Path = path;
        _lockPath = path + ".lock";
    }

    public string Path { get; }

    /// <summary>Every complete record, oldest first. Needs no lock: an append in progress is a line without its
    /// newline yet, which is skipped like a torn one.</summary>
    public IReadOnlyList<PromotionRecord> Read()
    {
        byte[] bytes;
        try
        {
            if (!File.Exists(Path))
            {
                return [];
            }
            bytes = File.ReadAllBytes(Path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw PromotionException.Io($"reading the promotion log '{Path}'", e);
        }
        var records = new List<PromotionRecord>();
        int start = 0;
        int line = 0;
        while (true)
        {
            int nl = Array.IndexOf(bytes, (byte)'\n', start);
            if (nl < 0)
            {
                break;
            }
            line++;
            if (nl > start)
            {
                records.Add(Parse(bytes.AsSpan(start, nl - start), line));
            }
            start = nl + 1;
        }
        return records;
    }

    /// <summary>The latest promotion of an image to <paramref name="channel"/> (of the image named <paramref name="image"/>,
    /// when given), or null. Promotions of services' pairs are not promotions of their image.</summary>
    public PromotionRecord? Latest(string channel, string? image = null) =>
        Read().LastOrDefault(r => r.Pair is null && r.Channel == channel && (image is null || r.Image == image));

    /// <summary>Whether the image <paramref name="digest"/> was ever promoted to <paramref name="channel"/> (by itself:
    /// a pair promoted with it does not count, its package and configuration were tested with it, not the image alone).</summary>
    public bool IsPromoted(Digest digest, string channel) =>
        Read().Any(r => r.Pair is null && r.Channel == channel && r.Digest == digest);

    /// <inheritdoc cref="IsPromoted(Digest, string)"/>
    public bool IsPromoted(string digest, string channel) =>
        Digest.TryParse(digest, out var d) && IsPromoted(d, channel);

    /// <summary>Appends <paramref name="record"/> durably (fsynced before this returns), first cutting off a torn last
    /// line. Appenders take turns on <c>promotions.jsonl.lock</c>.</summary>
    public async Task AppendAsync(PromotionRecord record, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(record);
        var line = Serialize(record);
        try
        {
            using var held = await FileLock.AcquireAsync(_lockPath, exclusive: true, ct).ConfigureAwait(false);
            bool created = !File.Exists(Path);
            using (var fs = new FileStream(Path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite))
            {
                long end = CompleteLength(fs);
                if (end != fs.Length)
                {
                    fs.SetLength(end);
                }
                fs.Seek(end, SeekOrigin.Begin);
                await fs.WriteAsync(line, CancellationToken.None).ConfigureAwait(false);
                fs.Flush(flushToDisk: true);
            }
            if (created)
            {
                Store.Native.FsyncDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(Path))!);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw PromotionException.Io($"appending to the promotion log '{Path}'", e);
        }
    }

    /// <summary>The length of the file up to and including its last newline: what is after it is a torn line.</summary>
    private static long CompleteLength(FileStream fs)
    {
        var buffer = new byte[4096];
        long pos = fs.Length;
        while (pos > 0)
        {
            int n = (int)Math.Min(buffer.Length, pos);
            pos -= n;
            fs.Seek(pos, SeekOrigin.Begin);
            fs.ReadExactly(buffer, 0, n);
            int nl = Array.LastIndexOf(buffer, (byte)'\n', n - 1, n);
            if (nl >= 0)
            {
                return pos + nl + 1;
            }
        }
        return 0;
    }

    /// <summary>A record's fields but its tag, as the log and <c>kiln promotions --json</c> both write them.</summary>
    public static void WriteFields(Utf8JsonWriter w, PromotionRecord r)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(r);
        w.WriteString("digest", r.Digest.Value);
        w.WriteString("image", r.Image);
        w.WriteString("channel", r.Channel);
        w.WriteString("time", r.Time.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture));
        w.WriteString("who", r.Who);
        w.WriteBoolean("approved", r.Approved);
        w.WriteStartArray("results");
        foreach (var result in r.Results)
        {
            w.WriteStartObject();
            w.WriteString("phase", result.Phase);
            w.WriteString("result", result.Result.Value);
            w.WriteString("spec", result.Spec.Value);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        if (r.Pair is { } pair)
        {
            w.WriteString("service", pair.Service);
            w.WriteString("package", pair.Package.Value);
            w.WriteString("config", pair.Config.Value);
        }
    }

    internal static byte[] Serialize(PromotionRecord r)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            WriteFields(w, r);
            if (r.Tag is not null)
            {
                w.WriteString("tag", r.Tag);
            }
            w.WriteEndObject();
        }
        ms.WriteByte((byte)'\n');
        return ms.ToArray();
    }

    private PromotionRecord Parse(ReadOnlySpan<byte> json, int line)
    {
        try
        {
            var reader = new Utf8JsonReader(json);
            using var doc = JsonDocument.ParseValue(ref reader);
            var root = doc.RootElement;
            return new PromotionRecord
            {
                Digest = Digest.Parse(Text(root, "digest")),
                Image = Text(root, "image"),
                Channel = Text(root, "channel"),
                Time = DateTimeOffset.Parse(Text(root, "time"), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal),
                Who = Text(root, "who"),
                Approved = root.TryGetProperty("approved", out var a) && a.GetBoolean(),
                Results = [.. root.GetProperty("results").EnumerateArray().Select(x => new PromotedResult(
                    Text(x, "phase"), Digest.Parse(Text(x, "result")), Digest.Parse(Text(x, "spec"))))],
                Tag = root.TryGetProperty("tag", out var t) ? t.GetString() : null,
                Pair = root.TryGetProperty("service", out _)
                    ? new PromotedPair(Text(root, "service"), Digest.Parse(Text(root, "package")), Digest.Parse(Text(root, "config")))
                    : null,
            };
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw PromotionException.CorruptLog(Path, line, e.Message, e);
        }
    }

    private static string Text(JsonElement e, string name) =>
        e.GetProperty(name).GetString() ?? throw new FormatException($"'{name}' is null");
}
