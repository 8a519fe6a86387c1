using System.Globalization;
using Kiln.Build.Native;

namespace Kiln.Build.Exporters.Disk;

/// <summary>An incremental disk is declined; the caller builds the disk in full and reports why.</summary>
internal sealed class IncrementalDeclinedException(string reason) : Exception(reason);

/// <summary>The debugfs commands that turn the old tree into the new one at the touched paths.</summary>
internal sealed class DebugfsPlan(string xattrDir)
{
    private readonly List<string> _commands = [];
    // Directory metadata is set after everything inside the directory has changed.
    private readonly List<string> _late = [];
    private readonly List<string> _done = [];
    private int _xattrFiles;

    public int CommandCount => _commands.Count + _late.Count;
    public long BytesWritten { get; private set; }
    public long InodesCreated { get; private set; }

    public IEnumerable<string> Commands() => _commands.Concat(Enumerable.Reverse(_late));

    public void Diff(string path, MergedNode? old, MergedNode? now)
    {
        if (_done.Any(d => path.StartsWith(d + "/", StringComparison.Ordinal)))
        {
            return; // inside a directory already removed or created as a whole
        }
        if (old is null && now is null)
        {
            return;
        }
        if (now is null)
        {
            Remove(old!);
            _done.Add(path);
            return;
        }
        if (old is null)
        {
            Create(now);
            _done.Add(path);
            return;
        }
        var (o, n) = (old.Status, now.Status);
        if (o.FileType != n.FileType)
        {
            Remove(old);
            Create(now);
            _done.Add(path);
            return;
        }
        if (n.IsRegularFile)
        {
            if (o.LinkCount > 1 || n.LinkCount > 1)
            {
                throw new IncrementalDeclinedException($"{path} is a hard link");
            }
            if (!SameContent(old.HostPath, now.HostPath))
            {
                _commands.Add($"rm {Q(path)}");
                Create(now);
                return;
            }
        }
        else if (n.IsSymlink)
        {
            if (new FileInfo(old.HostPath).LinkTarget != new FileInfo(now.HostPath).LinkTarget)
            {
                _commands.Add($"rm {Q(path)}");
                Create(now);
                return;
            }
        }
        else if (!n.IsDirectory)
        {
            if (o.RdevMajor != n.RdevMajor || o.RdevMinor != n.RdevMinor)
            {
                throw new IncrementalDeclinedException($"{path} is a changed special file");
            }
        }
        var target = n.IsDirectory ? _late : _commands;
        if (o.Mode != n.Mode)
        {
            target.Add($"sif {Q(path)} mode 0{Convert.ToString(n.Mode, 8)}");
        }
        if (o.Uid != n.Uid)
        {
            target.Add($"sif {Q(path)} uid {n.Uid}");
        }
        if (o.Gid != n.Gid)
        {
            target.Add($"sif {Q(path)} gid {n.Gid}");
        }
        if (o.MTimeSeconds != n.MTimeSeconds)
        {
            target.Add($"sif {Q(path)} mtime @{n.MTimeSeconds}");
        }
        DiffXattrs(path, old, now, target);
    }

    private void Remove(MergedNode node)
    {
        if (node.Status.IsDirectory)
        {
            foreach (var child in MergedTree.Children(node))
            {
                Remove(child);
            }
            _commands.Add($"rmdir {Q(node.ImagePath)}");
            return;
        }
        if (node.Status.IsRegularFile && node.Status.LinkCount > 1)
        {
            throw new IncrementalDeclinedException($"{node.ImagePath} is a hard link");
        }
        _commands.Add($"rm {Q(node.ImagePath)}");
    }

    private void Create(MergedNode node)
    {
        var st = node.Status;
        var path = node.ImagePath;
        InodesCreated++;
        var target = _commands;
        if (st.IsDirectory)
        {
            _commands.Add($"mkdir {Q(path)}");
            BytesWritten += 4096;
            foreach (var child in MergedTree.Children(node))
            {
                Create(child);
            }
            target = _late;
        }
        else if (st.IsRegularFile)
        {
            if (st.LinkCount > 1)
            {
                throw new IncrementalDeclinedException($"{path} is a hard link");
            }
            _commands.Add($"write {Q(node.HostPath)} {Q(path)}");
            BytesWritten += (st.Size + 4095) / 4096 * 4096;
        }
        else if (st.IsSymlink)
        {
            _commands.Add($"symlink {Q(path)} {Q(new FileInfo(node.HostPath).LinkTarget ?? "")}");
            BytesWritten += 4096;
        }
        else
        {
            throw new IncrementalDeclinedException($"{path} is a special file (device, fifo or socket)");
        }
        target.Add($"sif {Q(path)} mode 0{Convert.ToString(st.Mode, 8)}");
        target.Add($"sif {Q(path)} uid {st.Uid}");
        target.Add($"sif {Q(path)} gid {st.Gid}");
        target.Add($"sif {Q(path)} mtime @{st.MTimeSeconds}");
        DiffXattrs(path, null, node, target);
    }

    private void DiffXattrs(string path, MergedNode? old, MergedNode now, List<string> target)
    {
        var oldNames = old?.XattrNames() ?? [];
        var newNames = now.XattrNames();
        foreach (var name in oldNames.Except(newNames, StringComparer.Ordinal))
        {
            target.Add($"ea_rm {Q(path)} {Q(name)}");
        }
        foreach (var name in newNames)
        {
            var value = LibC.GetXattr(now.HostPath, name) ?? [];
            if (old is not null && oldNames.Contains(name) && (LibC.GetXattr(old.HostPath, name) ?? []).AsSpan().SequenceEqual(value))
            {
                continue;
            }
            Directory.CreateDirectory(xattrDir);
            var file = Path.Combine(xattrDir, (_xattrFiles++).ToString(CultureInfo.InvariantCulture));
            File.WriteAllBytes(file, value);
            target.Add($"ea_set -f {Q(file)} {Q(path)} {Q(name)}");
        }
    }

    private static bool SameContent(string a, string b)
    {
        if (a == b)
        {
            return true;
        }
        using var fa = File.OpenRead(a);
        using var fb = File.OpenRead(b);
        if (fa.Length != fb.Length)
        {
            return false;
        }
        var ba = new byte[1 << 16];
        var bb = new byte[1 << 16];
        int n;
        while ((n = fa.ReadAtLeast(ba, ba.Length, throwOnEndOfStream: false)) > 0)
        {
            fb.ReadExactly(bb, 0, n);
            if (!ba.AsSpan(0, n).SequenceEqual(bb.AsSpan(0, n)))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>A debugfs argument in double quotes; names debugfs cannot quote are declined.</summary>
    private static string Q(string text)
    {
        if (text.Any(c => c is '"' or '\\' || char.IsControl(c)))
        {
            throw new IncrementalDeclinedException($"the name '{text}' holds a character debugfs cannot take");
        }
        return "\"" + text + "\"";
    }
}
