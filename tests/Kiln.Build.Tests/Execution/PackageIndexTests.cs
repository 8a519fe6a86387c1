using Kiln.Build.Execution;
using Kiln.Build.Tests.Testing.Vm;

namespace Kiln.Build.Tests.Execution;

/// <summary>The index of apt's package lists: what it reads from a stanza, and when it is made again.</summary>
public sealed class PackageIndexTests : IDisposable
{
    private readonly ScratchDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private string Lists => Directory.CreateDirectory(Path.Combine(_dir.Path, "lists")).FullName;

    private string IndexPath => Path.Combine(_dir.Path, "lists.index");

    internal const string Main = """
        Package: web
        Version: 1.0
        Depends: libweb (>= 1.0), web-common | web-common-alt,
         logger:any
        Recommends: web-doc
        Suggests: web-extras [amd64]
        Description: a web server
         with a long description: that-is-no-package, nor-this

        Package: libweb
        Version: 1.0
        pre-depends: libc6 (>= 2.36)
        Depends: default-mta | mail-transport-agent

        Package: syslogger
        Provides: logger (= 1.0), log-daemon
        Depends: syslogger-lib [amd64] <!nocheck>

        """;

    private string WriteList(string name, string text)
    {
        var path = Path.Combine(Lists, name);
        File.WriteAllText(path, text.ReplaceLineEndings("\n"));
        return path;
    }

    private PackageIndex Open()
    {
        var index = PackageIndex.OpenOrBuild(Lists, IndexPath, PackageIndex.CurrentLists(Lists)!);
        Assert.NotNull(index);
        return index;
    }

    private static string[] Names(PackageIndex index, ReadOnlySpan<int> ids) => [.. ids.ToArray().Select(index.Name)];

    private static int Only(PackageIndex index, string name) => Assert.Single(index.StanzasOf(index.Find(name)).ToArray());

    [Fact]
    public void A_stanza_depends_on_every_name_of_its_Depends_and_Pre_Depends_and_mentions_its_Recommends_and_Suggests()
    {
        WriteList("example_main_binary-amd64_Packages", Main);
        using var index = Open();

        int web = Only(index, "web");
        Assert.Equal(["libweb", "web-common", "web-common-alt", "logger"], Names(index, index.DependsOf(web)));
        Assert.Equal(["web-doc", "web-extras"], Names(index, index.MentionsOf(web)));
        // Field names are matched without regard to case; versions, architectures and profiles are not names.
        Assert.Equal(["libc6", "default-mta", "mail-transport-agent"], Names(index, index.DependsOf(Only(index, "libweb"))));
        Assert.Equal(["syslogger-lib"], Names(index, index.DependsOf(Only(index, "syslogger"))));
        Assert.Equal(["syslogger"], Names(index, index.ProvidersOf(index.Find("logger"))));
        Assert.Equal(["syslogger"], Names(index, index.ProvidersOf(index.Find("log-daemon"))));
        // A description's text is no relation.
        Assert.Equal(-1, index.Find("that-is-no-package"));
        Assert.Equal(-1, index.Find("nosuch"));
    }

    [Fact]
    public void A_stanzas_range_is_its_text_from_the_first_line_to_the_last_newline_also_at_the_end_of_a_list_without_one()
    {
        var path = WriteList("example_main_binary-amd64_Packages", Main + "\n\nPackage: last\nVersion: 2");
        using var index = Open();
        var bytes = File.ReadAllBytes(path);
        string Text(string name)
        {
            var (offset, length) = index.RangeOf(Only(index, name));
            return System.Text.Encoding.UTF8.GetString(bytes, (int)offset, length);
        }

        Assert.Equal("Package: libweb\nVersion: 1.0\npre-depends: libc6 (>= 2.36)\nDepends: default-mta | mail-transport-agent\n", Text("libweb"));
        Assert.Equal("Package: last\nVersion: 2", Text("last"));
    }

    [Fact]
    public void Every_version_of_a_package_in_every_list_is_one_of_its_stanzas_numbered_in_list_order()
    {
        WriteList("b_updates_Packages", "Package: libweb\nVersion: 1.1\n\nPackage: extra\n");
        WriteList("a_main_Packages", Main);
        using var index = Open();

        Assert.Equal(["a_main_Packages", "b_updates_Packages"], index.Files.Select(f => f.Name));
        var stanzas = index.StanzasOf(index.Find("libweb")).ToArray();
        Assert.Equal([0, 1], stanzas.Select(index.FileOf));
        Assert.True(stanzas[0] < stanzas[1]);
    }

    [Fact]
    public void A_current_index_is_opened_as_it_is_and_a_changed_list_makes_it_again()
    {
        var path = WriteList("example_main_binary-amd64_Packages", Main);
        using (var first = Open())
        {
            Assert.Equal(-1, first.Find("added"));
        }
        var written = File.GetLastWriteTimeUtc(IndexPath);
        Thread.Sleep(20);
        using (Open())
        {
            Assert.Equal(written, File.GetLastWriteTimeUtc(IndexPath));
        }

        File.AppendAllText(path, "\nPackage: added\nDepends: web\n");
        using var again = Open();
        Assert.NotEqual(written, File.GetLastWriteTimeUtc(IndexPath));
        Assert.Equal(["web"], Names(again, again.DependsOf(Only(again, "added"))));
    }

    [Theory]
    [InlineData("cut")]
    [InlineData("garbage")]
    [InlineData("empty")]
    public void An_index_that_is_not_whole_is_not_opened_and_is_made_again(string damage)
    {
        WriteList("example_main_binary-amd64_Packages", Main);
        Open().Dispose();
        var bytes = File.ReadAllBytes(IndexPath);
        File.WriteAllBytes(IndexPath, damage switch
        {
            "cut" => bytes[..(bytes.Length / 2)],
            "garbage" => [.. Enumerable.Range(0, bytes.Length).Select(i => (byte)(i * 7))],
            _ => [],
        });

        Assert.Null(PackageIndex.TryOpen(IndexPath));
        using var index = Open();
        Assert.Equal(["syslogger"], Names(index, index.ProvidersOf(index.Find("logger"))));
        Assert.Equal(bytes.Length, new FileInfo(IndexPath).Length);
    }

    [Fact]
    public void Lists_that_apt_keeps_compressed_are_not_indexed_and_no_lists_make_no_index()
    {
        Assert.Empty(PackageIndex.CurrentLists(Lists)!);
        Assert.Null(PackageIndex.OpenOrBuild(Lists, IndexPath, []));
        Assert.False(File.Exists(IndexPath));

        WriteList("example_main_binary-amd64_Packages", Main);
        WriteList("example_main_i18n_Translation-en", "Package: web\nDescription-md5: 0\n");
        Assert.Single(PackageIndex.CurrentLists(Lists)!);
        WriteList("other_main_binary-amd64_Packages.lz4", "");
        Assert.Null(PackageIndex.CurrentLists(Lists));
    }
}
