using Kiln.Build.Native;

namespace Kiln.Build.Minimize;

/// <summary>The closure of what a minimized image keeps: from the paths the tests touched, every symlink on the way to
/// a file (the file's parents included), the interpreter and libraries each ELF file loads, found as the dynamic
/// loader would find them in the image.</summary>
public sealed class KeepSet
{
    private const int MaxLinks = 40;
    private static readonly string[] DefaultLibraryDirs =
        ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"];

    private readonly ImageTree _tree;
    private readonly HashSet<string> _kept = new(StringComparer.Ordinal);
    private readonly Queue<string> _files = new();
    private IReadOnlyList<string>? _libraryDirs;

    public KeepSet(ImageTree tree) => _tree = tree;

    /// <summary>Every kept path that exists in the image (files, symlinks, and directories named or passed through).</summary>
    public IReadOnlySet<string> Paths => _kept;

    /// <summary>Keeps <paramref name="path"/> (a missing one is passed over) and all it needs.</summary>
    public void Add(string path)
    {
        Resolve(path);
        while (_files.TryDequeue(out var file))
        {
            if (ElfFile.Read(_tree.Lookup(file)!.Value.HostPath) is not { } elf)
            {
                continue;
            }
            if (elf.Interpreter is { Length: > 0 } interpreter)
            {
                Resolve(interpreter);
            }
            var origin = Parent(file);
            foreach (var library in elf.Needed)
            {
                if (library.Contains('/'))
                {
                    Resolve(library.StartsWith('/') ? library : origin + "/" + library);
                    continue;
                }
                var dirs = elf.SearchPath.Select(d => d.Replace("$ORIGIN", origin, StringComparison.Ordinal).Replace("${ORIGIN}", origin, StringComparison.Ordinal))
                    .Concat(LibraryDirs());
                foreach (var dir in dirs)
                {
                    var candidate = Normalise(dir + "/" + library);
                    if (Resolve(candidate) is not null)
                    {
                        break;
                    }
                }
            }
        }
    }

    /// <summary>Where <paramref name="path"/> leads in the image (all links followed), or null when nowhere; keeps nothing.</summary>
    public string? Target(string path)
    {
        _dryRun = true;
        try
        {
            return Resolve(path);
        }
        finally
        {
            _dryRun = false;
        }
    }

    private bool _dryRun;

    /// <summary>Follows <paramref name="path"/> through the image as the kernel would (each symlink kept on the way),
    /// keeping what it passes; returns the real path it ends at, or null when it does not exist.</summary>
    private string? Resolve(string path, int depth = 0)
    {
        if (depth > MaxLinks)
        {
            return null;
        }
        var names = Normalise(path).Split('/', StringSplitOptions.RemoveEmptyEntries);
        string current = "/";
        for (int i = 0; i < names.Length; i++)
        {
            var next = current == "/" ? "/" + names[i] : current + "/" + names[i];
            if (_tree.Lookup(next) is not { } entry)
            {
                return null;
            }
            if (entry.Status.IsSymlink)
            {
                if (!_dryRun)
                {
                    _kept.Add(next);
                }
                if (new FileInfo(entry.HostPath).LinkTarget is not { } target)
                {
                    return null;
                }
                var rest = string.Join('/', names.Skip(i + 1));
                var joined = (target.StartsWith('/') ? target : current + "/" + target) + (rest.Length > 0 ? "/" + rest : "");
                return Resolve(joined, depth + 1);
            }
            if (!entry.Status.IsDirectory && i < names.Length - 1)
            {
                return null;
            }
            if (!_dryRun && _kept.Add(next) && entry.Status.IsRegularFile)
            {
                _files.Enqueue(next);
            }
            current = next;
        }
        return current;
    }

    /// <summary>The directories of /etc/ld.so.conf (and what it includes), then the default ones.</summary>
    private IReadOnlyList<string> LibraryDirs()
    {
        if (_libraryDirs is not null)
        {
            return _libraryDirs;
        }
        var dirs = new List<string>();
        ReadConf("/etc/ld.so.conf", dirs, 0);
        dirs.AddRange(DefaultLibraryDirs);
        return _libraryDirs = dirs.Distinct(StringComparer.Ordinal).ToList();
    }

    private void ReadConf(string path, List<string> dirs, int depth)
    {
        if (depth > 8 || Resolve(path) is not { } real || _tree.Lookup(real) is not { Status.IsRegularFile: true } entry)
        {
            return;
        }
        foreach (var raw in File.ReadLines(entry.HostPath))
        {
            var line = raw.Split('#')[0].Trim();
            if (line.StartsWith("include ", StringComparison.Ordinal))
            {
                var pattern = Normalise(line["include ".Length..].Trim());
                var dir = Parent(pattern);
                var glob = new PathGlob(pattern, prefix: false);
                foreach (var name in _tree.List(dir).Order(StringComparer.Ordinal))
                {
                    var candidate = dir == "/" ? "/" + name : dir + "/" + name;
                    if (glob.Matches(candidate))
                    {
                        ReadConf(candidate, dirs, depth + 1);
                    }
                }
            }
            else if (line.StartsWith('/'))
            {
                dirs.Add(Normalise(line));
            }
        }
    }

    private static string Parent(string path)
    {
        int slash = path.LastIndexOf('/');
        return slash <= 0 ? "/" : path[..slash];
    }

    /// <summary>An absolute path with <c>.</c>, <c>..</c> (never above the root) and repeated slashes resolved.</summary>
    public static string Normalise(string path)
    {
        var stack = new List<string>();
        foreach (var name in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (name == "..")
            {
                if (stack.Count > 0)
                {
                    stack.RemoveAt(stack.Count - 1);
                }
            }
            else if (name != ".")
            {
                stack.Add(name);
            }
        }
        return "/" + string.Join('/', stack);
    }
}
