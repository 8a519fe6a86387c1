namespace Kiln.Cli.Tests;

/// <summary>Checks that nothing of a build survives it: no mount or process that refers to the store
/// (in any mount namespace), and nothing in the store's temp and ingest areas.</summary>
public static class Leftovers
{
    public static IReadOnlyList<string> Find(string store)
    {
        var found = new List<string>();
        foreach (var dir in Directory.GetDirectories("/proc"))
        {
            var pid = Path.GetFileName(dir);
            if (!int.TryParse(pid, out var n) || n == Environment.ProcessId)
            {
                continue;
            }
            try
            {
                var cmdline = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
                if (cmdline.Contains(store, StringComparison.Ordinal))
                {
                    found.Add($"process {pid}: {cmdline}");
                }
                foreach (var line in File.ReadLines(Path.Combine(dir, "mountinfo")))
                {
                    if (line.Contains(store, StringComparison.Ordinal))
                    {
                        found.Add($"mount seen by {pid}: {line}");
                        break;
                    }
                }
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
        foreach (var area in new[] { "kiln/tmp", "kiln/scratch", "kiln/ingest" })
        {
            var p = Path.Combine(store, area);
            if (Directory.Exists(p))
            {
                found.AddRange(Directory.GetFileSystemEntries(p).Select(e => "left in store: " + e));
            }
        }
        return found;
    }

    public static void AssertNone(string store)
    {
        // Processes being reaped may take a moment to disappear from /proc.
        IReadOnlyList<string> found = [];
        for (int i = 0; i < 50; i++)
        {
            found = Find(store);
            if (found.Count == 0)
            {
                return;
            }
            Thread.Sleep(100);
        }
        Assert.Fail("left behind:\n" + string.Join('\n', found));
    }
}
