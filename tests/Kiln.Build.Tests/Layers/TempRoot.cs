using System.Diagnostics;
using Kiln.Build.Layers;
using Kiln.Build.Native;

namespace Kiln.Build.Tests.Layers;

/// <summary>A per-test temporary directory (on the same disk as /tmp), removed with everything under it.</summary>
internal sealed class TempRoot : IDisposable
{
    private readonly List<string> _mounts = [];

    public TempRoot()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "kiln-layers-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string Dir(string relative)
    {
        string p = System.IO.Path.Combine(Path, relative);
        Directory.CreateDirectory(p);
        return p;
    }

    public string Sub(string relative) => System.IO.Path.Combine(Path, relative);

    public void MountOverlay(string lower, string upper, string work, string merged)
    {
        Run("mount", "-t", "overlay", "overlay", "-o", $"lowerdir={lower},upperdir={upper},workdir={work}", merged);
        _mounts.Add(merged);
    }

    public void Unmount(string merged)
    {
        Run("umount", merged);
        _mounts.Remove(merged);
    }

    /// <summary>Runs a tool; its standard output, or an exception with its standard error when it fails.</summary>
    public static string Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEndAsync();
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed: {err}");
        }
        return output.Result;
    }

    public void Dispose()
    {
        foreach (string m in _mounts.ToArray())
        {
            try { Unmount(m); } catch (InvalidOperationException) { }
        }
        LayerExtractor.RemoveTree(Path);
    }
}

internal static class Fs
{
    public static void Write(string path, string content, uint mode = 0x1A4, uint uid = 0, uint gid = 0, long mtime = 1_600_000_000)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
        LibC.Lchown(path, uid, gid);
        LibC.Chmod(path, mode);
        LibC.SetTimesNoFollow(path, mtime);
    }

    public static void Symlink(string path, string target)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        File.CreateSymbolicLink(path, target);
    }

    /// <summary>A listing of a tree for comparisons: path, type, mode, owner, size, link target, content hash, xattrs.</summary>
    public static List<string> Describe(string root)
    {
        var lines = new List<string>();
        void Walk(string dir, string rel)
        {
            var children = Directory.EnumerateFileSystemEntries(dir).ToList();
            children.Sort(StringComparer.Ordinal);
            foreach (string child in children)
            {
                string name = rel + System.IO.Path.GetFileName(child);
                var st = LibC.Lstat(child);
                string extra = st.IsSymlink ? "-> " + new FileInfo(child).LinkTarget
                    : st.IsRegularFile ? Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(child)))[..12]
                    : st.IsCharDevice || st.IsBlockDevice ? $"{st.RdevMajor}:{st.RdevMinor}" : "";
                string xattrs = string.Join(",", LibC.ListXattrs(child)
                    .Select(x => x + "=" + Convert.ToHexString(LibC.GetXattr(child, x) ?? [])));
                lines.Add($"{name} {Convert.ToString(st.Mode, 8)} {st.Uid}:{st.Gid} {extra} [{xattrs}]");
                if (st.IsDirectory)
                {
                    Walk(child, name + "/");
                }
            }
        }
        Walk(root, "");
        return lines;
    }
}
