using System.Threading.Channels;

namespace Kiln.Build.Local;

/// <summary>Watches a build context (kiln.yaml's folder, spec files included) for changes with inotify
/// (<see cref="FileSystemWatcher"/>) and hands them out in bursts: a burst ends once the tree has been quiet for
/// <see cref="Quiet"/> (an editor's save is several events: a temp file, a rename, a chmod).</summary>
public sealed class ContextWatcher : IDisposable
{
    private readonly FileSystemWatcher _watcher;
    private readonly Channel<string> _changes = Channel.CreateUnbounded<string>();
    private readonly string _root;
    private readonly Func<string, bool> _ignore;

    /// <param name="ignore">Paths (relative to <paramref name="root"/>, with '/') whose changes do not count, such as the
    /// build's own outputs.</param>
    public ContextWatcher(string root, Func<string, bool> ignore)
    {
        _root = Path.GetFullPath(root);
        _ignore = ignore;
        _watcher = new FileSystemWatcher(_root)
        {
            IncludeSubdirectories = true,
            NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size
                | NotifyFilters.Attributes | NotifyFilters.CreationTime,
            InternalBufferSize = 64 * 1024,
        };
        _watcher.Changed += (_, e) => Add(e.FullPath);
        _watcher.Created += (_, e) => Add(e.FullPath);
        _watcher.Deleted += (_, e) => Add(e.FullPath);
        _watcher.Renamed += (_, e) =>
        {
            Add(e.OldFullPath);
            Add(e.FullPath);
        };
        // Events lost to an overflow: something changed, what is unknown.
        _watcher.Error += (_, _) => _changes.Writer.TryWrite(".");
        _watcher.EnableRaisingEvents = true;
    }

    public TimeSpan Quiet { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>At most this long from a burst's first change to its end, however busy the tree stays.</summary>
    public TimeSpan MaxBurst { get; init; } = TimeSpan.FromSeconds(2);

    private void Add(string fullPath)
    {
        var relative = Path.GetRelativePath(_root, fullPath).Replace(Path.DirectorySeparatorChar, '/');
        if (!_ignore(relative))
        {
            _changes.Writer.TryWrite(relative);
        }
    }

    /// <summary>Waits for the next burst of changes and returns the paths that changed in it, sorted.</summary>
    public async Task<IReadOnlyList<string>> NextAsync(CancellationToken ct)
    {
        var paths = new SortedSet<string>(StringComparer.Ordinal) { await _changes.Reader.ReadAsync(ct).ConfigureAwait(false) };
        var burst = System.Diagnostics.Stopwatch.StartNew();
        while (burst.Elapsed < MaxBurst)
        {
            using var quiet = CancellationTokenSource.CreateLinkedTokenSource(ct);
            quiet.CancelAfter(Quiet);
            try
            {
                paths.Add(await _changes.Reader.ReadAsync(quiet.Token).ConfigureAwait(false));
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                break;
            }
        }
        while (_changes.Reader.TryRead(out var more))
        {
            paths.Add(more);
        }
        return [.. paths];
    }

    /// <summary>Forgets the changes seen so far (those a build made itself, say).</summary>
    public void Drain()
    {
        while (_changes.Reader.TryRead(out _))
        {
        }
    }

    public void Dispose() => _watcher.Dispose();
}
