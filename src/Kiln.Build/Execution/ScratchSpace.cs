using System.Globalization;
using Kiln.Build.Store;

namespace Kiln.Build.Execution;

/// <summary>What the machine's memory allows right now: the RAM, what is free of it, and the memory limit of the
/// cgroup kiln runs in (tmpfs pages count against it, and a cgroup that runs out kills instead of failing a write).</summary>
internal readonly record struct MemoryFacts(long Total, long Available, long? CgroupLimit, long? CgroupUsage);

/// <summary>How large a step's tmpfs may grow (see <see cref="BuildOptions.MemoryScratchSize"/>).</summary>
internal static class ScratchSpace
{
    /// <summary>With less memory than this free, steps write to disk from the start.</summary>
    public const long MinimumFree = 512L << 20;

    /// <summary>A temp dir for a sandbox's writes: a tmpfs of <see cref="Bytes"/> for <paramref name="memorySize"/> when
    /// that allows one and it mounts; else a dir on the store's disk (always, for a null size).</summary>
    public static (string Path, bool InMemory) CreateTempDir(KilnStore store, string purpose, string? memorySize)
    {
        if (memorySize is not null && Bytes(memorySize, Recent()) is { } bytes
            && store.CreateMemoryTempDir(purpose, bytes) is { } dir)
        {
            return (dir, true);
        }
        return (store.CreateTempDir(purpose), false);
    }

    /// <summary>The tmpfs size in bytes for <paramref name="option"/> (a percentage of the RAM, or of the cgroup's
    /// limit when lower; or bytes with an optional k, m or g), never more than half the memory free now; null when
    /// too little memory is free for a tmpfs to be worth it.</summary>
    public static long? Bytes(string option, MemoryFacts facts)
    {
        long free = facts.Available;
        long basis = facts.Total;
        if (facts.CgroupLimit is { } limit)
        {
            basis = Math.Min(basis, limit);
            free = Math.Min(free, Math.Max(0, limit - (facts.CgroupUsage ?? 0)));
        }
        if (free < MinimumFree)
        {
            return null;
        }
        long wanted = option.EndsWith('%') ? basis * Percent(option) / 100 : ParseSize(option);
        return Math.Min(wanted, free / 2);
    }

    private static long ParseSize(string option)
    {
        long unit = char.ToLowerInvariant(option[^1]) switch { 'k' => 1L << 10, 'm' => 1L << 20, 'g' => 1L << 30, _ => 1 };
        var digits = unit == 1 ? option : option[..^1];
        long n = ParsePositive(digits, option);
        return n > long.MaxValue / unit ? long.MaxValue : n * unit;
    }

    private static long Percent(string option) =>
        ParsePositive(option[..^1], option) is var p && p <= 100 ? p : throw new ArgumentException($"memory scratch size '{option}' is more than all of the memory", nameof(option));

    private static long ParsePositive(string digits, string option) =>
        long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out long n) && n > 0
            ? n
            : throw new ArgumentException($"memory scratch size '{option}' is not a size like 8g, 512m or 25%", nameof(option));

    private sealed record Reading(long At, MemoryFacts Facts);

    private static Reading? s_recent;

    /// <summary>How long, in milliseconds, <see cref="Recent"/> answers from its last reading.</summary>
    private const long RecentForMs = 1000;

    /// <summary><see cref="Read"/>, at most once a second: an image's test sandboxes start together and each read took
    /// 0.3-0.7 ms (files of /proc and of each cgroup level), on the path to the tests' first command.</summary>
    public static MemoryFacts Recent()
    {
        long now = Environment.TickCount64;
        if (s_recent is { } r && now - r.At < RecentForMs)
        {
            return r.Facts;
        }
        var facts = Read();
        s_recent = new Reading(now, facts);
        return facts;
    }

    /// <summary>Reads /proc/meminfo and the memory limit and use of kiln's cgroup and of its ancestors (v2, or v1's
    /// memory controller), keeping the tightest limit.</summary>
    public static MemoryFacts Read()
    {
        long total = 0, available = 0; // unknown: no tmpfs (see Bytes)
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
            {
                if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
                {
                    total = KiB(line);
                }
                else if (line.StartsWith("MemAvailable:", StringComparison.Ordinal))
                {
                    available = KiB(line);
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            (total, available) = (0, 0);
        }
        long? limit = null, usage = null;
        try
        {
            // "0::/path" for cgroup v2, "N:memory:/path" for v1's memory controller. Of the levels from kiln's
            // cgroup up to the root, the tightest is the one with the least headroom left.
            foreach (var line in File.ReadLines("/proc/self/cgroup"))
            {
                var parts = line.Split(':', 3);
                var (root, maxFile, currentFile) = parts is [_, "", _] ? ("/sys/fs/cgroup", "memory.max", "memory.current")
                    : parts is [_, "memory", _] ? ("/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes")
                    : default;
                if (root is null || parts.Length != 3)
                {
                    continue;
                }
                for (var dir = (root + parts[2]).TrimEnd('/'); dir.StartsWith(root, StringComparison.Ordinal); dir = Path.GetDirectoryName(dir)!)
                {
                    if (ReadNumber(Path.Combine(dir, maxFile)) is { } max)
                    {
                        long current = ReadNumber(Path.Combine(dir, currentFile)) ?? 0;
                        if (limit is null || max - current < limit - usage)
                        {
                            (limit, usage) = (max, current);
                        }
                    }
                    if (dir == root)
                    {
                        break;
                    }
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // No cgroup view: the RAM is the limit.
        }
        return new MemoryFacts(total, available, limit, usage);
    }

    private static long KiB(string line) =>
        long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;

    /// <summary>The number in a cgroup file; null for "max", a missing file or anything else.</summary>
    private static long? ReadNumber(string path) =>
        File.Exists(path) && long.TryParse(File.ReadAllText(path).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long n) ? n : null;
}
