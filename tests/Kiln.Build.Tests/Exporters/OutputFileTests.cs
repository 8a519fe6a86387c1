using Kiln.Build.Exporters;

namespace Kiln.Build.Tests.Exporters;

public sealed class OutputFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kiln-outputfile").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Target => Path.Combine(_dir, "server.qcow2");

    [Fact]
    public void A_committed_file_appears_at_the_target_and_nothing_else_remains()
    {
        using (var output = new OutputFile(Target))
        {
            File.WriteAllText(output.PartialPath, "disk");
            Assert.False(File.Exists(Target));
            output.Commit();
        }
        Assert.Equal("disk", File.ReadAllText(Target));
        Assert.Equal(["server.qcow2"], Directory.GetFileSystemEntries(_dir).Select(Path.GetFileName));
    }

    [Fact]
    public void A_file_never_committed_is_deleted_and_the_previous_target_is_untouched()
    {
        File.WriteAllText(Target, "previous");
        using (var output = new OutputFile(Target))
        {
            File.WriteAllText(output.PartialPath, "half a disk");
        }
        Assert.Equal("previous", File.ReadAllText(Target));
        Assert.Single(Directory.GetFileSystemEntries(_dir));
    }

    [Fact]
    public void Partials_left_by_a_dead_writer_are_removed_and_a_live_writers_are_kept()
    {
        // A pid above the kernel's pid_max is never alive; pid 1 always is.
        var dead = Path.Combine(_dir, ".server.qcow2.kiln-partial-99999999-0badf00d");
        var live = Path.Combine(_dir, ".server.qcow2.kiln-partial-1-0badf00d");
        var other = Path.Combine(_dir, ".web.qcow2.kiln-partial-99999999-0badf00d");
        foreach (var p in new[] { dead, live, other })
        {
            File.WriteAllText(p, "x");
        }
        using (new OutputFile(Target))
        {
        }
        Assert.False(File.Exists(dead));
        Assert.True(File.Exists(live));
        Assert.True(File.Exists(other));
    }

    [Fact]
    public void A_missing_folder_or_a_folder_as_target_is_bad_input()
    {
        Assert.True(Assert.Throws<ExportException>(() => new OutputFile(Path.Combine(_dir, "no", "x.raw"))).IsBadInput);
        Assert.True(Assert.Throws<ExportException>(() => new OutputFile(_dir)).IsBadInput);
    }
}
