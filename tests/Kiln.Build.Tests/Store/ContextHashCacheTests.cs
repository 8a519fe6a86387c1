using Kiln.Build.Planning;
using Kiln.Build.Store;
using Kiln.Build.Tests.Layers;

namespace Kiln.Build.Tests.Store;

public sealed class ContextHashCacheTests : IDisposable
{
    private readonly TempRoot _root = new();
    private readonly Counting _inner = new();

    private sealed class Counting : IContextHasher
    {
        private readonly Sha256ContextHasher _real = new();
        public int Calls { get; private set; }

        public string HashFile(string absolutePath)
        {
            Calls++;
            return _real.HashFile(absolutePath);
        }
    }

    public void Dispose() => _root.Dispose();

    private string Store => _root.Sub("store");
    private string Context => _root.Dir("ctx");

    /// <summary>A cache that sees the clock <paramref name="later"/> ahead: files written by the test count as settled.</summary>
    private ContextHashCache Load(TimeSpan later) =>
        ContextHashCache.Load(Store, Context, _inner, () => DateTimeOffset.UtcNow + later);

    private string Write(string name, string text)
    {
        var path = Path.Combine(Context, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void An_unchanged_file_is_not_read_again_by_the_next_build()
    {
        var file = Write("app.js", "one");
        var first = Load(TimeSpan.FromMinutes(1));
        var hash = first.HashFile(file);
        first.Save();
        Assert.Equal(1, _inner.Calls);

        var second = Load(TimeSpan.FromMinutes(1));
        Assert.Equal(hash, second.HashFile(file));
        Assert.Equal(1, _inner.Calls);
        Assert.Equal(0, second.FilesHashed);
    }

    [Fact]
    public void A_changed_file_is_hashed_again_even_with_its_size_and_mtime_put_back()
    {
        var file = Write("app.js", "one");
        var mtime = File.GetLastWriteTimeUtc(file);
        var first = Load(TimeSpan.FromMinutes(1));
        var before = first.HashFile(file);
        first.Save();

        File.WriteAllText(file, "two"); // same size
        File.SetLastWriteTimeUtc(file, mtime); // ctime still moves
        var second = Load(TimeSpan.FromMinutes(1));
        var after = second.HashFile(file);
        Assert.NotEqual(before, after);
        Assert.Equal(new Sha256ContextHasher().HashFile(file), after);
        Assert.Equal(2, _inner.Calls);
    }

    [Fact]
    public void A_file_changed_moments_before_it_was_read_is_not_remembered()
    {
        var file = Write("app.js", "one");
        var first = Load(TimeSpan.Zero); // the file changed just now: a write in the same tick could follow
        first.HashFile(file);
        first.Save();
        Load(TimeSpan.Zero).HashFile(file);
        Assert.Equal(2, _inner.Calls);
    }

    [Fact]
    public void Files_the_last_build_did_not_read_drop_out_and_a_damaged_cache_file_is_ignored()
    {
        var a = Write("a", "a");
        var b = Write("b", "b");
        var first = Load(TimeSpan.FromMinutes(1));
        first.HashFile(a);
        first.HashFile(b);
        first.Save();
        var second = Load(TimeSpan.FromMinutes(1));
        second.HashFile(a);
        second.Save();
        var third = Load(TimeSpan.FromMinutes(1));
        third.HashFile(b);
        Assert.Equal(3, _inner.Calls); // b was forgotten by the second build

        var cacheFile = Directory.GetFiles(Path.Combine(Store, "kiln", "cache", "context")).Single();
        File.WriteAllText(cacheFile, "kiln context hashes 1\nnot\ta\tvalid\tline\n");
        Load(TimeSpan.FromMinutes(1)).HashFile(a);
        Assert.Equal(4, _inner.Calls);
    }

    [Fact]
    public async Task Gc_removes_the_cache_of_a_context_that_is_gone_and_keeps_the_others()
    {
        var kept = Write("kept", "k");
        var first = Load(TimeSpan.FromMinutes(1));
        first.HashFile(kept);
        first.Save();
        var goneDir = _root.Dir("gone-ctx");
        var goneFile = Path.Combine(goneDir, "f");
        File.WriteAllText(goneFile, "g");
        var other = ContextHashCache.Load(Store, goneDir, _inner, () => DateTimeOffset.UtcNow + TimeSpan.FromMinutes(1));
        other.HashFile(goneFile);
        other.Save();
        var dir = Path.Combine(Store, "kiln", "cache", "context");
        Assert.Equal(2, Directory.GetFiles(dir).Length);

        Directory.Delete(goneDir, recursive: true);
        using (var store = KilnStore.Open(Store))
        {
            await store.CollectGarbageAsync();
        }
        Assert.Single(Directory.GetFiles(dir));
        Load(TimeSpan.FromMinutes(1)).HashFile(kept);
        Assert.Equal(2, _inner.Calls); // the kept context's cache still answers
    }
}
