using Kiln.Build.Store;

namespace Kiln.Build.Exporters;

/// <summary>An export's file while it is being written: a hidden partial file beside the target, renamed
/// into place by <see cref="Commit"/> after an fsync. Disposed without a commit (an error, a cancel), the
/// partial file is deleted, so the output path never holds a half-written export. A SIGKILL can leave the
/// hidden partial file behind, never a file at the output path.</summary>
public sealed class OutputFile : IDisposable
{
    private bool _committed;

    public OutputFile(string outputPath)
    {
        Target = Path.GetFullPath(outputPath);
        var dir = Path.GetDirectoryName(Target)!;
        if (!Directory.Exists(dir))
        {
            throw ExportException.BadInput($"cannot write {outputPath}: folder {dir} does not exist");
        }
        if (Directory.Exists(Target))
        {
            throw ExportException.BadInput($"cannot write {outputPath}: it is a folder");
        }
        RemoveAbandonedPartials(dir, Path.GetFileName(Target));
        PartialPath = Path.Combine(dir, $".{Path.GetFileName(Target)}.kiln-partial-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}");
    }

    /// <summary>Deletes partial files of this target left by exports whose process is gone (killed with SIGKILL, or a
    /// power loss): their name carries the writer's pid.</summary>
    private static void RemoveAbandonedPartials(string dir, string name)
    {
        var prefix = $".{name}.kiln-partial-";
        foreach (var path in Directory.EnumerateFileSystemEntries(dir, prefix + "*"))
        {
            var rest = Path.GetFileName(path)[prefix.Length..];
            var dash = rest.IndexOf('-', StringComparison.Ordinal);
            if (dash > 0 && int.TryParse(rest[..dash], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var pid)
                && pid != Environment.ProcessId && !Directory.Exists($"/proc/{pid}"))
            {
                if (Directory.Exists(path))
                {
                    StoreFs.DeleteTree(path);
                }
                else
                {
                    StoreFs.TryDeleteFile(path);
                }
            }
        }
    }

    /// <summary>The final path.</summary>
    public string Target { get; }

    /// <summary>Where to write: a file (or a folder, for writers that need one) beside the target.</summary>
    public string PartialPath { get; }

    /// <summary>fsyncs the partial file and renames it over the target.</summary>
    public void Commit()
    {
        using (var fs = new FileStream(PartialPath, FileMode.Open, FileAccess.ReadWrite))
        {
            fs.Flush(flushToDisk: true);
        }
        File.Move(PartialPath, Target, overwrite: true);
        Kiln.Build.Store.Native.FsyncDirectory(Path.GetDirectoryName(Target)!);
        _committed = true;
    }

    public void Dispose()
    {
        if (!_committed)
        {
            if (Directory.Exists(PartialPath))
            {
                StoreFs.DeleteTree(PartialPath);
            }
            else
            {
                StoreFs.TryDeleteFile(PartialPath);
            }
        }
    }
}
