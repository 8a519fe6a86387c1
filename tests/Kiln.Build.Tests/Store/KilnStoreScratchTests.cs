using Kiln.Build.Store;

namespace Kiln.Build.Tests.Store;

/// <summary>Memory temp dirs (a tmpfs per step) and the ext4 placement hint on kiln/tmp. Needs root (mount).</summary>
public class KilnStoreScratchTests
{
    private static string FsType(string path) => Run("stat", "-f", "-c", "%T", path).Trim();

    private static string Run(string file, params string[] args) => Kiln.Build.Tests.Layers.TempRoot.Run(file, args);

    private static bool Mounted(string path) =>
        File.ReadAllLines("/proc/self/mountinfo").Any(l => l.Split(' ')[4] == path);

    [Fact]
    public void A_memory_temp_dir_is_a_tmpfs_of_the_given_size_that_deleting_unmounts_and_removes()
    {
        using var t = new TestStore();

        var dir = t.Store.CreateMemoryTempDir("step", 8L << 20);

        Assert.NotNull(dir);
        // Its mount point is made in kiln/scratch, a plain dir (see the next test), not in kiln/tmp (+T).
        Assert.Equal(t.ScratchDir, Path.GetDirectoryName(dir));
        Assert.StartsWith($"{Environment.ProcessId}-step-", Path.GetFileName(dir));
        Assert.Equal("tmpfs", FsType(dir));
        var (free, total) = KilnStore.TempSpace(dir);
        Assert.Equal(8L << 20, total);
        Assert.True(free > 7L << 20);
        File.WriteAllBytes(Path.Combine(dir, "data"), new byte[1 << 20]);
        Assert.True(KilnStore.TempSpace(dir).Free <= free - (1 << 20));

        t.Store.DeleteTempDir(dir);

        Assert.False(Directory.Exists(dir));
        Assert.False(Mounted(dir));
    }

    [Theory]
    [InlineData("scratch")]
    [InlineData("tmp")] // where an earlier Kiln made them
    public void Opening_after_a_dead_process_unmounts_and_removes_its_memory_temp_dir(string area)
    {
        using var t = new TestStore();
        var dead = Path.Combine(t.Root, "kiln", area, "999999-step-0123abcd");
        Directory.CreateDirectory(dead);
        Run("mount", "-t", "tmpfs", "-o", "size=4m", "kiln-scratch", dead);
        Directory.CreateDirectory(Path.Combine(dead, "upper", "etc"));
        File.WriteAllText(Path.Combine(dead, "upper", "etc", "f"), "left by a crash");
        Assert.True(Mounted(dead));

        using var second = KilnStore.Open(t.Root);

        Assert.False(Mounted(dead));
        Assert.False(Directory.Exists(dead));
    }

    [Fact]
    public void The_temp_dir_is_marked_as_a_top_of_directory_hierarchies_where_the_filesystem_has_the_attribute()
    {
        using var t = new TestStore();
        var type = FsType(t.TmpDir);
        // ext4 (which stat calls ext2/ext3) has the attribute; so does this machine's /tmp.
        Assert.True(type == "ext2/ext3", $"the test's temp dir is on {type}, not ext4: this test checks nothing there");

        var attributes = Run("lsattr", "-d", t.TmpDir).Split(' ')[0];

        Assert.Contains('T', attributes);
    }

    [Fact]
    public void The_dir_of_memory_temp_dirs_is_not_marked_as_a_top_of_directory_hierarchies()
    {
        using var t = new TestStore();
        Assert.Equal("ext2/ext3", FsType(t.ScratchDir));

        var attributes = Run("lsattr", "-d", t.ScratchDir).Split(' ')[0];

        Assert.DoesNotContain('T', attributes);
    }
}
