using Kiln.Build.Execution;
using Kiln.Build.Tests.Testing.Vm;

namespace Kiln.Build.Tests.Execution;

/// <summary>A package step's view of the lists: what it holds and how it is written.</summary>
public sealed class PackageViewTests : IDisposable
{
    private readonly ScratchDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private string Lists => Directory.CreateDirectory(Path.Combine(_dir.Path, "lists")).FullName;

    private string View => Path.Combine(_dir.Path, "view");

    private const string MainList = "example_dists_main_binary-amd64_Packages";
    private const string UpdatesList = "example_dists_updates_main_binary-amd64_Packages";

    private const string Main = """
        Package: web
        Version: 1.0
        Depends: libweb (>= 1.0), web-common | web-common-alt, logger:any
        Recommends: web-doc
        Suggests: web-extras

        Package: unrelated
        Depends: libweb

        Package: libweb
        Version: 1.0
        Pre-Depends: libc6
        Depends: default-mta | mail-transport-agent

        Package: web-common

        Package: web-common-alt
        Depends: alt-helper

        Package: alt-helper

        Package: syslogger
        Provides: logger (= 1.0)
        Depends: syslogger-lib

        Package: syslogger-lib

        Package: exim
        Provides: mail-transport-agent

        Package: web-doc
        Depends: doc-base

        Package: doc-base

        Package: web-extras
        Depends: extras-lib

        Package: extras-lib

        Package: libc6
        Version: 2.36

        Package: installed-tool
        Depends: tool-lib

        Package: tool-lib

        """;

    private const string Updates = """
        Package: libweb
        Version: 1.1
        Depends: libweb-data

        Package: unrelated-update

        Package: libweb-data
        """;

    private const string Status = """
        Package: installed-tool
        Status: install ok installed
        Version: 1.0

        Package: libc6
        Status: install ok installed
        Version: 2.36
        Description: the C library
         Package: not-a-field

        """;

    private PackageIndex Index()
    {
        File.WriteAllText(Path.Combine(Lists, MainList), Main);
        File.WriteAllText(Path.Combine(Lists, UpdatesList), Updates);
        return PackageIndex.OpenOrBuild(Lists, Path.Combine(_dir.Path, "lists.index"), PackageIndex.CurrentLists(Lists)!)!;
    }

    private static byte[] Bytes(string text) => System.Text.Encoding.UTF8.GetBytes(text);

    /// <summary>The Package field of every stanza in a list file.</summary>
    private static List<string> PackagesIn(string path) =>
        [.. File.ReadAllLines(path).Where(l => l.StartsWith("Package: ", StringComparison.Ordinal)).Select(l => l["Package: ".Length..])];

    [Fact]
    public void A_view_holds_the_images_packages_the_requested_ones_and_everything_they_could_pull_in()
    {
        using var index = Index();
        var names = PackageView.Select(index, Bytes(Status), ["web=1.0"])
            .Select(s => Enumerable.Range(0, index.NameCount).First(n => index.StanzasOf(n).Contains(s)))
            .Select(index.Name).Distinct().Order(StringComparer.Ordinal).ToList();

        // Every alternative, providers of virtual names (logger, mail-transport-agent) and what they need, every version
        // of libweb and what its newer version needs, the image's packages and theirs; Recommends and Suggests listed
        // but not followed; reverse dependencies (unrelated) left out.
        Assert.Equal(
            ["alt-helper", "exim", "installed-tool", "libc6", "libweb", "libweb-data", "syslogger", "syslogger-lib",
             "tool-lib", "web", "web-common", "web-common-alt", "web-doc", "web-extras"], names);
    }

    [Fact]
    public void The_names_of_an_image_are_the_Package_fields_of_its_status_not_text_in_a_description()
    {
        Assert.Equal(["installed-tool", "libc6"], PackageView.InstalledNames(Bytes(Status)).Select(n => System.Text.Encoding.UTF8.GetString(n)));
    }

    [Fact]
    public void A_view_is_each_list_with_its_chosen_stanzas_byte_for_byte_in_list_order_beside_the_release_files()
    {
        File.WriteAllText(Path.Combine(Lists, "example_dists_main_InRelease"), "signed release\n");
        File.WriteAllText(Path.Combine(Lists, "example_dists_updates_Release"), "release\n");
        File.WriteAllText(Path.Combine(Lists, "example_dists_updates_Release.gpg"), "signature\n");
        File.WriteAllText(Path.Combine(Lists, "example_dists_main_i18n_Translation-en"), "Package: web\n");
        Directory.CreateDirectory(Path.Combine(Lists, "auxfiles"));
        File.WriteAllText(Path.Combine(Lists, "lock"), "");
        using var index = Index();

        int count = PackageView.Write(index, Lists, View, Bytes(Status), ["web"]);

        Assert.Equal(
            ["example_dists_main_InRelease", MainList, "example_dists_updates_Release", "example_dists_updates_Release.gpg", UpdatesList],
            Directory.GetFiles(View).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal(["partial"], Directory.GetDirectories(View).Select(Path.GetFileName));
        Assert.Equal("signed release\n", File.ReadAllText(Path.Combine(View, "example_dists_main_InRelease")));
        Assert.Equal(["web", "libweb", "web-common", "web-common-alt", "alt-helper", "syslogger", "syslogger-lib", "exim", "web-doc",
            "web-extras", "libc6", "installed-tool", "tool-lib"], PackagesIn(Path.Combine(View, MainList)));
        Assert.Equal(15, count);
        // Stanzas as they are in the list, each ended by a blank line; the last one of a list without a final newline gets one.
        Assert.StartsWith("Package: web\nVersion: 1.0\nDepends: libweb (>= 1.0), web-common | web-common-alt, logger:any\nRecommends: web-doc\nSuggests: web-extras\n\nPackage: libweb\n",
            File.ReadAllText(Path.Combine(View, MainList)));
        Assert.Equal("Package: libweb\nVersion: 1.1\nDepends: libweb-data\n\nPackage: libweb-data\n\n", File.ReadAllText(Path.Combine(View, UpdatesList)));
    }

    [Fact]
    public void A_request_for_a_name_no_list_has_makes_a_view_of_the_images_packages_for_apt_to_report()
    {
        using var index = Index();
        PackageView.Write(index, Lists, View, Bytes(Status), ["nosuch"]);

        Assert.Equal(["libc6", "installed-tool", "tool-lib"], PackagesIn(Path.Combine(View, MainList)));
        Assert.Empty(File.ReadAllText(Path.Combine(View, UpdatesList)));
    }
}
