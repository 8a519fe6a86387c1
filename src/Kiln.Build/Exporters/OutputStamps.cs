using Kiln.Build.Store;
using Kiln.Oci;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Kiln.Build.Exporters;

/// <summary>What the store remembers of an output file a build wrote: which image, in which form, and the file's
/// size and modification time then. A build whose image and output entry are unchanged, and whose file
/// is still as written, leaves the file alone instead of writing it again.</summary>
public sealed record OutputStamp
{
    [JsonPropertyName("path")]
    public required string Path { get; init; }

    [JsonPropertyName("manifest")]
    public required string Manifest { get; init; }

    /// <summary>The format and options (e.g. "qcow2 size=4294967296").</summary>
    [JsonPropertyName("what")]
    public required string What { get; init; }

    [JsonPropertyName("length")]
    public required long Length { get; init; }

    [JsonPropertyName("mtimeTicks")]
    public required long MtimeTicks { get; init; }

    /// <summary>Disks: the content id of the kept disk the file was written from (null for other formats).</summary>
    [JsonPropertyName("disk")]
    public string? Disk { get; init; }
}

[JsonSourceGenerationOptions(WriteIndented = false, UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip)]
[JsonSerializable(typeof(OutputStamp))]
internal sealed partial class OutputStampJsonContext : JsonSerializerContext;

/// <summary>The stamps of the output files builds wrote, in the store's <c>kiln/outputs/HASH.json</c> (HASH of the
/// output's full path).</summary>
public sealed class OutputStamps
{
    private readonly ImageRecords _records;

    public OutputStamps(KilnStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        _records = store.ImageRecords(KilnStore.OutputStampsFolder);
    }

    private static string StampFileName(string outputPath) =>
        Convert.ToHexStringLower(Sha256Hasher.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(outputPath)))) + ".json";

    /// <summary>True when <paramref name="outputPath"/> is still the file this store wrote for <paramref name="manifest"/>
    /// and <paramref name="what"/> (same length and modification time as recorded).</summary>
    public bool IsCurrent(string outputPath, string manifest, string what) =>
        Unchanged(outputPath, what) is { } stamp && stamp.Manifest == manifest;

    /// <summary>The stamp of <paramref name="outputPath"/> when the file is still as this store wrote it as
    /// <paramref name="what"/> (same length and modification time as recorded), whatever image it holds; else null.</summary>
    public OutputStamp? Unchanged(string outputPath, string what)
    {
        OutputStamp? stamp;
        try
        {
            stamp = JsonSerializer.Deserialize(File.ReadAllBytes(Path.Combine(_records.Dir, StampFileName(outputPath))), OutputStampJsonContext.Default.OutputStamp);
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            return null;
        }
        var file = new FileInfo(outputPath);
        return stamp is not null && file.Exists && stamp.Path == Path.GetFullPath(outputPath) && stamp.What == what
            && stamp.Length == file.Length && stamp.MtimeTicks == file.LastWriteTimeUtc.Ticks ? stamp : null;
    }

    /// <summary>Records that <paramref name="outputPath"/> now holds <paramref name="manifest"/> as <paramref name="what"/>.</summary>
    public async Task RecordAsync(string outputPath, string manifest, string what, CancellationToken ct = default, string? disk = null)
    {
        var file = new FileInfo(outputPath);
        var stamp = new OutputStamp
        {
            Path = Path.GetFullPath(outputPath),
            Manifest = manifest,
            What = what,
            Length = file.Length,
            MtimeTicks = file.LastWriteTimeUtc.Ticks,
            Disk = disk,
        };
        var bytes = JsonSerializer.SerializeToUtf8Bytes(stamp, OutputStampJsonContext.Default.OutputStamp);
        await _records.WriteAsync(StampFileName(outputPath), bytes, ct).ConfigureAwait(false);
    }
}
