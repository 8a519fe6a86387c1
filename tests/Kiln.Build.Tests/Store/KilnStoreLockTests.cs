using System.Diagnostics;
using Kiln.Build.Store;
using Kiln.Oci;

namespace Kiln.Build.Tests.Store;

public sealed class KilnStoreLockTests
{
    [Fact]
    public async Task Concurrent_tagging_from_many_tasks_and_store_instances_loses_no_tag()
    {
        using var t = new TestStore();
        var manifest = await t.Store.Content.WriteImageAsync(await t.AddLayerAsync(TestStore.Empty, "a", "a"));
        using var other = KilnStore.Open(t.Root);
        var tasks = Enumerable.Range(0, 32).Select(i => Task.Run(() =>
            (i % 2 == 0 ? t.Store : other).Names.TagAsync($"img-{i:D2}", manifest)));
        await Task.WhenAll(tasks);
        Assert.Equal(Enumerable.Range(0, 32).Select(i => $"img-{i:D2}"), t.Store.Names.ListTags().Select(x => x.Name));
    }

    [Fact]
    public async Task Tagging_waits_for_another_process_holding_the_index_lock()
    {
        using var t = new TestStore();
        var manifest = await t.Store.Content.WriteImageAsync(await t.AddLayerAsync(TestStore.Empty, "a", "a"));
        var indexLock = Path.Combine(t.Root, "kiln", "index.lock");
        var ready = Path.Combine(t.Root, "kiln", "holder-ready");
        using var holder = Process.Start("flock", ["-x", indexLock, "-c", $"touch {ready}; sleep 1"]);
        await WaitForFileAsync(ready);

        var sw = Stopwatch.StartNew();
        await t.Store.Names.TagAsync("web", manifest);
        sw.Stop();

        await holder.WaitForExitAsync();
        Assert.True(sw.ElapsedMilliseconds >= 500, $"tagged after {sw.ElapsedMilliseconds} ms while the lock was held");
        Assert.NotNull(t.Store.Names.TryGetTag("web"));
    }

    [Fact]
    public async Task Exclusive_store_lock_waits_for_another_process_holding_it_shared_and_can_be_cancelled()
    {
        using var t = new TestStore();
        var storeLock = Path.Combine(t.Root, "kiln", "lock");
        var ready = Path.Combine(t.Root, "kiln", "holder-ready");
        using var holder = Process.Start("flock", ["-s", storeLock, "-c", $"touch {ready}; sleep 2"]);
        await WaitForFileAsync(ready);

        using (t.Store.AcquireLock(exclusive: false))
        {
            // Shared locks coexist.
        }
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        Assert.ThrowsAny<OperationCanceledException>(() => t.Store.AcquireLock(exclusive: true, cts.Token));
        holder.Kill(entireProcessTree: true);
        await holder.WaitForExitAsync();
    }

    [Fact]
    public async Task Gc_waits_while_a_build_holds_the_shared_lock()
    {
        using var t = new TestStore();
        var build = t.Store.AcquireLock(exclusive: false);
        var gc = t.Store.CollectGarbageAsync();
        await Task.Delay(200);
        Assert.False(gc.IsCompleted);
        build.Dispose();
        await gc.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public void Two_exclusive_locks_in_one_process_exclude_each_other()
    {
        using var t = new TestStore();
        using var first = t.Store.AcquireLock(exclusive: true);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        Assert.ThrowsAny<OperationCanceledException>(() => t.Store.AcquireLock(exclusive: false, cts.Token));
    }

    private static async Task WaitForFileAsync(string path)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!File.Exists(path))
        {
            Assert.True(DateTime.UtcNow < deadline, "lock holder did not start");
            await Task.Delay(10);
        }
    }
}
