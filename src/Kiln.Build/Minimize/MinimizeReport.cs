using System.Text.Json;
using System.Text.Json.Serialization;
using Kiln.Build.Store;

namespace Kiln.Build.Minimize;

/// <summary>What minimizing an image kept and dropped, by package, its sizes before and after, and the retest's
/// failures with the dropped files near each. Stored as <c>kiln/minimize/DIGEST.json</c> under the minimized image's
/// manifest digest.</summary>
public sealed record MinimizeReport
{
    /// <summary>The minimized image's manifest digest (the record's key, and what gc checks).</summary>
    public required string Manifest { get; init; }
    public required string Image { get; init; }
    public required string FullManifest { get; init; }
    public IReadOnlyList<string> Profiles { get; init; } = [];
    public bool FromTests { get; init; }
    public IReadOnlyList<string> Keep { get; init; } = [];
    /// <summary>Regular-file bytes and non-directory entries of the merged filesystem, before and after.</summary>
    public long BytesBefore { get; init; }
    public long BytesAfter { get; init; }
    public int FilesBefore { get; init; }
    public int FilesAfter { get; init; }
    /// <summary>The images' layer blobs (compressed), before and after.</summary>
    public long LayerBytesBefore { get; init; }
    public long LayerBytesAfter { get; init; }
    /// <summary>Paths the recording saw (from-tests), before closure.</summary>
    public int Recorded { get; init; }
    public IReadOnlyList<PackageFiles> Kept { get; init; } = [];
    public IReadOnlyList<PackageFiles> Dropped { get; init; } = [];
    /// <summary>Null until the minimized image is tested; then whether it passed its full spec.</summary>
    public bool? Passed { get; init; }
    public IReadOnlyList<RetestFailure> Failures { get; init; } = [];
}

/// <summary>Files of one package (<c>(none)</c>: no package's list names them), sorted.</summary>
public sealed record PackageFiles(string Package, long Bytes, IReadOnlyList<string> Files);

/// <summary>A check that failed on the minimized image, what it found, and the dropped files near it (named by it, in
/// the same directory as a path it names, or of the same package).</summary>
public sealed record RetestFailure(string Check, IReadOnlyList<string> Failures, IReadOnlyList<string> DroppedNear);

/// <summary>The files the image's tests opened or executed, for one image digest and spec digest.</summary>
public sealed record AccessRecording(string Manifest, string Spec, IReadOnlyList<string> Paths);

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip)]
[JsonSerializable(typeof(MinimizeReport))]
[JsonSerializable(typeof(AccessRecording))]
internal sealed partial class MinimizeJsonContext : JsonSerializerContext;

/// <summary>The minimize records of a store: reports by minimized manifest, recordings by image and spec digest.</summary>
public sealed class MinimizeRecords
{
    private readonly ImageRecords _reports;
    private readonly ImageRecords _recordings;

    public MinimizeRecords(KilnStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        _reports = store.ImageRecords(KilnStore.MinimizeReportsFolder);
        _recordings = store.ImageRecords(KilnStore.MinimizeRecordingsFolder);
    }

    public MinimizeReport? TryReadReport(Oci.Digest manifest) =>
        Read(_reports, manifest.Hex + ".json", MinimizeJsonContext.Default.MinimizeReport);

    public Task WriteReportAsync(MinimizeReport report, CancellationToken ct) =>
        _reports.WriteAsync(Oci.Digest.Parse(report.Manifest).Hex + ".json", JsonSerializer.SerializeToUtf8Bytes(report, MinimizeJsonContext.Default.MinimizeReport), ct);

    internal AccessRecording? TryReadRecording(string key) => Read(_recordings, key + ".json", MinimizeJsonContext.Default.AccessRecording);

    internal Task WriteRecordingAsync(string key, AccessRecording recording, CancellationToken ct) =>
        _recordings.WriteAsync(key + ".json", JsonSerializer.SerializeToUtf8Bytes(recording, MinimizeJsonContext.Default.AccessRecording), ct);

    private static T? Read<T>(ImageRecords records, string name, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type) where T : class
    {
        var path = Path.Combine(records.Dir, name);
        try
        {
            return File.Exists(path) ? JsonSerializer.Deserialize(File.ReadAllBytes(path), type) : null;
        }
        catch (JsonException)
        {
            return null; // a torn record is as good as none: it is made again
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw StoreException.Io($"reading '{path}'", e);
        }
    }
}
