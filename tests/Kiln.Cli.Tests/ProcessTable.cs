namespace Kiln.Cli.Tests;

/// <summary>The host's processes as /proc shows them, for tests that look for what a sandbox left running.</summary>
internal static class ProcessTable
{
    /// <summary>Every pid /proc lists now.</summary>
    public static IEnumerable<int> Pids() =>
        Directory.EnumerateDirectories("/proc").Select(Path.GetFileName).Where(n => n!.All(char.IsAsciiDigit)).Select(n => int.Parse(n!));

    /// <summary>The process exists and is not a zombie.</summary>
    public static bool Alive(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/stat").Split(' ')[2] != "Z";
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>The target of one of its /proc links (root, ns/pid, …), or null once it is gone.</summary>
    public static string? Link(int pid, string name)
    {
        try
        {
            return new FileInfo($"/proc/{pid}/{name}").LinkTarget;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
