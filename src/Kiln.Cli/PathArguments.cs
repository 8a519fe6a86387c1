using Kiln.Build.Definition;

namespace Kiln.Cli;

/// <summary>Checks a command's path arguments before it does any work: a mistyped path is bad input (exit 2), named
/// in the message, and nothing is half-done (no build run only to fail writing its report).</summary>
internal static class PathArguments
{
    /// <summary>A kiln.yaml, or a folder holding one.</summary>
    public static string Definition(string command, string path)
    {
        try
        {
            return DefinitionLoader.FindFile(path);
        }
        catch (FileNotFoundException e)
        {
            throw new UsageException($"kiln {command}: {e.Message}");
        }
    }

    /// <summary>A file to write: its folder must exist, and it must not be a folder itself (as exports check theirs).</summary>
    public static void Output(string command, string option, string? path)
    {
        if (path is null)
        {
            return;
        }
        var full = Path.GetFullPath(path);
        if (Directory.Exists(full))
        {
            throw new UsageException($"kiln {command}: cannot write {option} {path}: it is a folder");
        }
        var folder = Path.GetDirectoryName(full);
        if (folder is not null && !Directory.Exists(folder))
        {
            throw new UsageException($"kiln {command}: cannot write {option} {path}: folder {folder} does not exist");
        }
    }
}
