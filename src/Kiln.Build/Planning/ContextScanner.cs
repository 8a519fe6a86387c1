using Kiln.Oci;
using System.Text;
using Kiln.Build.Definition;

namespace Kiln.Build.Planning;

/// <summary>Lists what a copy step reads from the build context: every file, directory and symlink
/// under each source, recursively, never following a symlink.</summary>
internal static class ContextScanner
{
    public const string File = "file";
    public const string Directory = "dir";
    public const string Symlink = "symlink";

    public static IReadOnlyList<ContextFile> Inputs(string contextDir, CopyStep copy, IContextHasher hasher)
    {
        var found = new SortedDictionary<string, ContextFile>(StringComparer.Ordinal);
        foreach (var source in copy.Sources)
        {
            var relative = source.TrimEnd('/');
            var full = relative is "." or "" ? contextDir : Path.Combine(contextDir, relative);
            if (relative is "." or "")
            {
                ScanChildren(contextDir, full, hasher, found);
            }
            else
            {
                Scan(contextDir, full, hasher, found);
            }
        }

        return found.Values.ToList();
    }

    private static void Scan(string contextDir, string full, IContextHasher hasher, SortedDictionary<string, ContextFile> found)
    {
        var relative = Path.GetRelativePath(contextDir, full).Replace('\\', '/');
        if (found.ContainsKey(relative))
        {
            return;
        }

        var info = new FileInfo(full);
        if (info.LinkTarget is { } target)
        {
            found[relative] = new ContextFile(relative, Symlink, Permissions(info), Sha256(target));
        }
        else if ((info.Attributes & FileAttributes.Directory) != 0)
        {
            found[relative] = new ContextFile(relative, Directory, Permissions(info), "");
            ScanChildren(contextDir, full, hasher, found);
        }
        else if (info.Exists)
        {
            found[relative] = new ContextFile(relative, File, Permissions(info), hasher.HashFile(full));
        }
        else
        {
            throw new FileNotFoundException($"copy source {relative} does not exist in the build context {contextDir}", full);
        }
    }

    private static void ScanChildren(string contextDir, string dir, IContextHasher hasher, SortedDictionary<string, ContextFile> found)
    {
        foreach (var child in System.IO.Directory.EnumerateFileSystemEntries(dir))
        {
            Scan(contextDir, child, hasher, found);
        }
    }

    private static int Permissions(FileSystemInfo info) =>
        info.LinkTarget is not null ? 0b111_111_111 : (int)info.UnixFileMode;

    private static string Sha256(string text) => Convert.ToHexStringLower(Sha256Hasher.HashData(Encoding.UTF8.GetBytes(text)));
}
