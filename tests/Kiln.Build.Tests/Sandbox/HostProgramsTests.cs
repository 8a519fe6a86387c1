using System.Diagnostics;
using Kiln.Build.Sandbox;

namespace Kiln.Build.Tests.Sandbox;

/// <summary>The host programs kiln starts and the one list that declares their packages (packaging/control): a
/// program whose package is missing there works where the tests ran first and fails on a fresh machine.</summary>
public sealed class HostProgramsTests
{
    private static readonly string[] MainFields = ["Depends", "X-Essential-Used"];
    private static readonly string[] VmFields = ["Depends", "Recommends"];

    private static string RepoRoot
    {
        get
        {
            var dir = AppContext.BaseDirectory;
            while (!File.Exists(Path.Combine(dir, "Kiln.slnx")))
            {
                dir = Path.GetDirectoryName(dir) ?? throw new InvalidOperationException("no Kiln.slnx above " + AppContext.BaseDirectory);
            }
            return dir;
        }
    }

    private static string ControlPath => Path.Combine(RepoRoot, "packaging", "control");

    [Fact]
    public void Every_program_kiln_starts_comes_with_a_package_the_list_declares()
    {
        var control = DebControl.Parse(File.ReadAllText(ControlPath));
        var problems = new List<string>();
        foreach (var program in HostPrograms.All)
        {
            var fields = program.Use == HostProgramUse.Main ? MainFields : VmFields;
            if (!fields.Any(f => control.Packages(f).Contains(program.Package)))
            {
                problems.Add($"{program.Name}: its package {program.Package} is in none of {string.Join(", ", fields)} of packaging/control");
            }
        }
        Assert.True(problems.Count == 0, string.Join('\n', problems));
    }

    [Fact]
    public void The_list_names_the_boot_phase_and_disk_tools_for_the_main_job()
    {
        // The packages of item 1 of issue 18, by name: the catalogue could lose an entry, the list must not.
        var depends = DebControl.Parse(File.ReadAllText(ControlPath)).Packages("Depends");
        Assert.Superset(new HashSet<string> { "mmdebstrap", "systemd-container", "e2fsprogs", "qemu-utils", "mtools", "syslinux", "dosfstools", "fdisk" },
            depends.ToHashSet());
    }

    [Fact]
    public void No_source_file_starts_a_program_by_a_literal_name()
    {
        var src = Path.Combine(RepoRoot, "src");
        var catalogued = HostPrograms.All.Select(p => p.Name).ToList();
        var problems = new List<string>();
        foreach (var file in Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var rel = Path.GetRelativePath(RepoRoot, file);
            if (rel.Split('/').Any(part => part is "bin" or "obj") || rel.EndsWith("/HostPrograms.cs", StringComparison.Ordinal))
            {
                continue;
            }
            foreach (var f in ProcessStartScanner.Scan(File.ReadAllText(file), catalogued))
            {
                problems.Add($"{rel}:{f.Line}: {f.Rule}: {f.Text}");
            }
        }
        Assert.True(problems.Count == 0,
            "name each host program with HostPrograms (src/Kiln.Build/Sandbox/HostPrograms.cs) and its package in packaging/control:\n" +
            string.Join('\n', problems));
    }

    [Theory]
    [InlineData("var psi = new ProcessStartInfo(\"nsenter\")")]
    [InlineData("var psi = new ProcessStartInfo(\"setpriv\") { UseShellExecute = false };")]
    [InlineData("await HostCommand.RunAsync(HostCommand.StartInfo(\"cp\", [\"--sparse=always\", source, copy], null), ct)")]
    [InlineData("await HostTool.CheckAsync($\"copying {name} into the boot partition\", \"mcopy\", [\"-i\", bootImg], ct, env)")]
    [InlineData("await HostTool.CheckAsync(\"making, the FAT\", \"newfs-tool\", [\"-C\"], ct, env)")]
    [InlineData("var r = await HostTool.RunAsync(\"dumpe2fs\", [\"-h\", fs], null, ct)")]
    [InlineData("foreach (var a in new[] { \"--pdeathsig\", \"KILL\", \"--\", \"unshare\", \"--mount\", \"--\", \"mmdebstrap\" })")]
    [InlineData("args.AddRange([\"--\", HostProgram(\"systemd-nspawn\"), \"-D\", merged]);")]
    [InlineData("[\"-c\", \"exec sfdisk --quiet --no-reread \\\"$1\\\" < \\\"$2\\\"\", \"sh\", diskPath, script]")]
    [InlineData("private const string S = $$\"\"\"\nset -eu\n(cd \"$links\" && mount -t overlay x \"$m\") || exit 125\n\"\"\";")]
    [InlineData("private const string S = $$\"\"\"\nset -eu\nexec newfs-tool \"$@\"\n\"\"\";")]
    [InlineData("public string QemuPath { get; init; } = \"qemu-system-x86_64\";")]
    [InlineData("throw Failed($\"e2fsck -fn found problems: {Tail(fsck.Output, 5)}\");")]
    [InlineData("var psi = new ProcessStartInfo { FileName = \"newtool\" };")]
    public void Scanner_finds_a_program_started_by_a_literal_name(string code)
    {
        Assert.NotEmpty(ProcessStartScanner.Scan(code, HostPrograms.All.Select(p => p.Name).ToList()));
    }

    [Theory]
    [InlineData("var psi = new ProcessStartInfo(HostPrograms.Nsenter.Name)")]
    [InlineData("await HostTool.CheckAsync($\"copying {name} into the boot partition\", HostPrograms.Mcopy.Name, [\"-i\", bootImg, \"::/\" + name], ct, env)")]
    [InlineData("RunAsync(HostPrograms.Sh.Name, [\"-c\", $\"exec {HostPrograms.Debugfs} -w -f \\\"$1\\\" \\\"$2\\\" 2>\\\"$3\\\"\", \"sh\", script], null, ct)")]
    [InlineData("private static readonly string S = $$\"\"\"\n(cd \"$links\" && {{HostPrograms.Mount}} -t overlay x \"$m\") || { echo \"cannot mount the layers\" >&2; exit 125; }\nexec {{HostPrograms.MkfsExt4}} \"$@\"\n\"\"\";")]
    [InlineData("await RunInSandboxAsync(image, step, [\"/bin/sh\", \"-c\", run.Command], ct); // exec debugfs -w in a comment")]
    [InlineData("new[] { \"-t\", pid, \"-m\", \"--\", ImageShell, \"-c\", command }")]
    [InlineData("throw new IncrementalDeclinedException($\"debugfs could not apply the changes: {string.Join(\"; \", problems.Take(3))}\");")]
    [InlineData("var c = '\"'; var s = \"exec \\\"$@\\\"\";")]
    public void Scanner_passes_programs_named_from_the_catalogue(string code)
    {
        Assert.Empty(ProcessStartScanner.Scan(code, HostPrograms.All.Select(p => p.Name).ToList()));
    }

    [Theory]
    [InlineData("build", new[] { "Depends", "X-Essential-Used", "Build-Depends" })]
    [InlineData("test", new[] { "Depends", "X-Essential-Used", "Build-Depends", "Recommends", "X-Test-Depends" })]
    public void Setup_installs_exactly_the_declared_list(string mode, string[] fields)
    {
        var control = DebControl.Parse(File.ReadAllText(ControlPath));
        var expected = fields.SelectMany(control.Packages).Order(StringComparer.Ordinal).ToList();
        var printed = SetupPrint(RepoRoot, mode);
        Assert.Equal(expected, printed.Order(StringComparer.Ordinal).ToList());
        Assert.Contains("systemd-container", printed);
    }

    [Fact]
    public void Setup_reads_the_list_rather_than_keeping_its_own()
    {
        // setup.sh beside a list of made-up packages prints those and nothing else.
        var dir = Directory.CreateTempSubdirectory("kiln-setup-");
        try
        {
            Directory.CreateDirectory(Path.Combine(dir.FullName, "scripts"));
            Directory.CreateDirectory(Path.Combine(dir.FullName, "packaging"));
            File.Copy(Path.Combine(RepoRoot, "scripts", "setup.sh"), Path.Combine(dir.FullName, "scripts", "setup.sh"));
            File.WriteAllText(Path.Combine(dir.FullName, "packaging", "control"),
                "# a comment: Depends: nothing\nSource: kiln\nBuild-Depends: kiln-b1 (>= 1), kiln-b2 | kiln-b3\nX-Test-Depends: kiln-t1\n\n" +
                "Package: kiln\nDepends: kiln-d1,\n kiln-d2 [amd64]\nRecommends: kiln-r1\nDescription: x\n y\n");
            Assert.Equal(["kiln-b1", "kiln-b2", "kiln-d1", "kiln-d2"], SetupPrint(dir.FullName, "build").Order(StringComparer.Ordinal));
            Assert.Equal(["kiln-b1", "kiln-b2", "kiln-d1", "kiln-d2", "kiln-r1", "kiln-t1"], SetupPrint(dir.FullName, "test").Order(StringComparer.Ordinal));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Each_installed_program_belongs_to_its_package()
    {
        // Where a program is installed here, dpkg says which package put it there: the catalogue must name that one.
        if (!File.Exists("/usr/bin/dpkg-query"))
        {
            return;
        }
        var installed = new List<(HostProgram Program, string Path, List<string> Candidates)>();
        foreach (var program in HostPrograms.All)
        {
            var path = Path.IsPathRooted(program.Name) ? program.Name
                : Kiln.Build.Sandbox.Sandbox.DefaultPath.Split(':').Select(d => Path.Combine(d, program.Name)).FirstOrDefault(File.Exists);
            if (path is not null && File.Exists(path))
            {
                installed.Add((program, path, Candidates(path)));
            }
        }
        Assert.True(installed.Count > 0, "no host program of the catalogue is installed here");
        // One dpkg-query for every path: each call reads the whole database.
        var owners = Owners(installed.SelectMany(i => i.Candidates).Distinct(StringComparer.Ordinal));
        var problems = new List<string>();
        foreach (var (program, path, candidates) in installed)
        {
            var found = candidates.SelectMany(c => owners.TryGetValue(c, out var o) ? o : []).ToHashSet(StringComparer.Ordinal);
            if (!found.Contains(program.Package))
            {
                problems.Add($"{program.Name} ({path}): the catalogue says {program.Package}, dpkg says {(found.Count == 0 ? "no package" : string.Join(", ", found))}");
            }
        }
        Assert.True(problems.Count == 0, string.Join('\n', problems));
    }

    [Fact]
    public void The_essential_packages_used_are_essential()
    {
        // X-Essential-Used is left out of Depends only because every Debian system has those packages.
        if (!File.Exists("/usr/bin/dpkg-query"))
        {
            return;
        }
        var packages = DebControl.Parse(File.ReadAllText(ControlPath)).Packages("X-Essential-Used");
        Assert.NotEmpty(packages);
        var (_, output) = Run("/usr/bin/dpkg-query", ["-W", "-f=${Package} ${Essential}\n", .. packages]);
        foreach (var package in packages)
        {
            Assert.True(output.Split('\n').Contains($"{package} yes"), $"{package} is not an Essential package here:\n{output}");
        }
    }

    /// <summary>The path, its /usr-merged alias (dpkg's database has /bin/cp where PATH finds /usr/bin/cp) and, for a
    /// link, what it leads to.</summary>
    private static List<string> Candidates(string path)
    {
        var candidates = new List<string> { path };
        foreach (var (a, b) in new[] { ("/usr/bin/", "/bin/"), ("/usr/sbin/", "/sbin/"), ("/usr/lib/", "/lib/") })
        {
            if (path.StartsWith(a, StringComparison.Ordinal))
            {
                candidates.Add(b + path[a.Length..]);
            }
            else if (path.StartsWith(b, StringComparison.Ordinal))
            {
                candidates.Add(a + path[b.Length..]);
            }
        }
        if (new FileInfo(path).ResolveLinkTarget(returnFinalTarget: true) is { } target)
        {
            candidates.Add(target.FullName);
        }
        return candidates;
    }

    /// <summary>Path to the packages that dpkg says own it, for those of the paths it knows.</summary>
    private static Dictionary<string, List<string>> Owners(IEnumerable<string> paths)
    {
        var (_, output) = Run("/usr/bin/dpkg-query", ["-S", .. paths]);
        var owners = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var line in output.Split('\n'))
        {
            // "pkg1, pkg2: /path"; diversions print "diversion by pkg from: /path"; unknown paths an error line.
            int colon = line.IndexOf(": /", StringComparison.Ordinal);
            if (colon > 0 && !line.StartsWith("diversion ", StringComparison.Ordinal) && !line.StartsWith("dpkg-query", StringComparison.Ordinal))
            {
                var path = line[(colon + 2)..].Trim();
                if (!owners.TryGetValue(path, out var list))
                {
                    owners[path] = list = [];
                }
                list.AddRange(line[..colon].Split(", ").Select(p => p.Split(':')[0].Trim()));
            }
        }
        return owners;
    }

    private static List<string> SetupPrint(string root, string mode)
    {
        var (code, output) = Run("/bin/bash", [Path.Combine(root, "scripts", "setup.sh"), "--print", mode]);
        Assert.True(code == 0, $"scripts/setup.sh --print {mode} exited {code}: {output}");
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries).ToList();
    }

    private static (int Code, string Output) Run(string file, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout + stderr.Result);
    }
}

/// <summary>The fields of a debian/control-shaped file (paragraphs of "Field: value" with indented continuation lines and
/// # comments), and the package names in a relationship field.</summary>
internal sealed class DebControl
{
    private readonly Dictionary<string, string> _fields = new(StringComparer.OrdinalIgnoreCase);

    public static DebControl Parse(string text)
    {
        var control = new DebControl();
        string? field = null;
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith('#'))
            {
                continue;
            }
            if (line.Length > 0 && char.IsWhiteSpace(line[0]) && field is not null)
            {
                control._fields[field] += "\n" + line;
            }
            else if (line.IndexOf(':') is > 0 and var colon)
            {
                field = line[..colon];
                if (!control._fields.TryAdd(field, line[(colon + 1)..]))
                {
                    throw new FormatException($"packaging/control: field {field} appears twice");
                }
            }
            else
            {
                field = null;
            }
        }
        return control;
    }

    /// <summary>Every package a relationship field names (each alternative of a | b), without versions or architectures.</summary>
    public IReadOnlyList<string> Packages(string field) =>
        !_fields.TryGetValue(field, out var value) ? []
        : value.Split(',', '|')
            .Select(p => p.Split('(', '[', '<')[0].Trim())
            .Where(p => p.Length > 0)
            .ToList();
}
