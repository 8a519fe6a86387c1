namespace Kiln.Build.Testing;

/// <summary>What a test leaves running once its answer is known: stopping an instance and removing it, removing a
/// command's scratch space, writing a phase's result to the cache. None of it changes the answer, so the build tags
/// the image (and goes on) meanwhile; it is all awaited before the store lock is given up, and its first error is
/// thrown then.</summary>
internal sealed class Teardown
{
    private readonly List<Task> _tasks = [];
    private readonly Lock _gate = new();

    public void Add(Task task)
    {
        lock (_gate)
        {
            _tasks.Add(task);
        }
    }

    /// <summary>Waits for everything added so far (and what is added meanwhile).</summary>
    public async Task WhenIdleAsync()
    {
        while (true)
        {
            Task[] tasks;
            lock (_gate)
            {
                tasks = [.. _tasks];
                _tasks.Clear();
            }
            if (tasks.Length == 0)
            {
                return;
            }
            await Task.WhenAll(tasks).ConfigureAwait(false);
        }
    }
}
