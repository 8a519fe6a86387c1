using Kiln.Build.Minimize;

namespace Kiln.Build.Tests.Minimize;

public sealed class KeepSetTests : IDisposable
{
    private readonly string _root = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "kiln-keep-" + Guid.NewGuid().ToString("N"))).FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void Elf_header_of_the_hosts_ls_names_its_interpreter_and_libraries()
    {
        var elf = ElfFile.Read("/bin/ls");

        Assert.NotNull(elf);
        Assert.Equal("/lib64/ld-linux-x86-64.so.2", elf.Interpreter);
        Assert.Contains("libc.so.6", elf.Needed);
        Assert.Contains("libselinux.so.1", elf.Needed);
    }

    [Fact]
    public void A_script_or_text_is_no_elf_file()
    {
        File.WriteAllText(Path.Combine(_root, "s"), "#!/bin/sh\necho hi\n");
        Assert.Null(ElfFile.Read(Path.Combine(_root, "s")));
    }

    [Fact]
    public void Keeping_ls_keeps_its_links_interpreter_and_libraries_found_as_the_loader_would()
    {
        // A merged-/usr root: /bin -> usr/bin, libraries found through /etc/ld.so.conf.d.
        var lib = "/usr/lib/x86_64-linux-gnu";
        Put("/usr/bin/ls", "/bin/ls");
        Link("/bin", "usr/bin");
        Link("/lib64/ld-linux-x86-64.so.2", lib + "/ld-linux-x86-64.so.2");
        Put(lib + "/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
        Put(lib + "/libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6");
        Put(lib + "/libselinux.so.1", "/lib/x86_64-linux-gnu/libselinux.so.1");
        Put(lib + "/libpcre2-8.so.0", "/lib/x86_64-linux-gnu/libpcre2-8.so.0");
        Put(lib + "/libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1"); // nothing needs it
        Text("/etc/ld.so.conf", "include /etc/ld.so.conf.d/*.conf\n");
        Text("/etc/ld.so.conf.d/x86_64-linux-gnu.conf", "# multiarch\n" + lib + "\n");

        var keep = new KeepSet(ImageTree.OfDirectory(_root));
        keep.Add("/bin/ls");

        Assert.Contains("/bin", keep.Paths);
        Assert.Contains("/usr/bin/ls", keep.Paths);
        Assert.Contains("/lib64/ld-linux-x86-64.so.2", keep.Paths);
        Assert.Contains(lib + "/ld-linux-x86-64.so.2", keep.Paths);
        Assert.Contains(lib + "/libc.so.6", keep.Paths);
        Assert.Contains(lib + "/libselinux.so.1", keep.Paths);
        Assert.Contains(lib + "/libpcre2-8.so.0", keep.Paths); // needed by libselinux, not by ls
        Assert.Contains("/usr/bin", keep.Paths); // parents
        Assert.DoesNotContain(lib + "/libz.so.1", keep.Paths);
    }

    [Fact]
    public void Symlink_chains_are_kept_link_by_link_and_never_leave_the_root()
    {
        Text("/opt/app/v2/run", "x");
        Link("/opt/app/current", "v2");
        Link("/usr/local/bin/run", "/opt/app/current/run");
        Link("/usr/local/bin/out", "../../../../../../etc/shadow-not-here");

        var keep = new KeepSet(ImageTree.OfDirectory(_root));
        keep.Add("/usr/local/bin/run");
        keep.Add("/usr/local/bin/out");
        keep.Add("/missing/file");

        Assert.Equal(
            ["/opt", "/opt/app", "/opt/app/current", "/opt/app/v2", "/opt/app/v2/run", "/usr", "/usr/local", "/usr/local/bin",
             "/usr/local/bin/out", "/usr/local/bin/run"],
            keep.Paths.Order(StringComparer.Ordinal));
    }

    private string Host(string path)
    {
        var host = _root + path;
        Directory.CreateDirectory(Path.GetDirectoryName(host)!);
        return host;
    }

    private void Put(string path, string from) => File.Copy(from, Host(path));

    private void Text(string path, string text) => File.WriteAllText(Host(path), text);

    private void Link(string path, string target) => File.CreateSymbolicLink(Host(path), target);
}
