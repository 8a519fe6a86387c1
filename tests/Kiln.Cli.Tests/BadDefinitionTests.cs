using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace Kiln.Cli.Tests;

/// <summary>Every bad definition exits 2, names file:line:column, and leaves the store byte-for-byte unchanged.</summary>
public sealed class BadDefinitionTests : IDisposable
{
    private readonly TempDir _store = new("kiln-store");

    public BadDefinitionTests()
    {
        // A store with one image in it, so "unchanged" means something.
        using var ctx = new TinyContext("images:\n  tiny:\n    from: scratch\n    steps:\n" + TinyContext.RootStep);
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
    }

    public void Dispose() => _store.Dispose();

    public static TheoryData<string, string, int, int> Cases => new()
    {
        { "unknown top-level key", "images: {}\nimagez: {}\n", 2, 1 },
        { "unknown image key", "images:\n  a:\n    from: scratch\n    stepz: []\n", 4, 5 },
        { "unknown step key", "images:\n  a:\n    from: scratch\n    steps:\n      - run: true\n        netwrk: none\n", 6, 9 },
        { "wrong type", "images:\n  a:\n    from: scratch\n    steps:\n      - packages: {a: b}\n", 5, 19 },
        { "cycle of from", "images:\n  a:\n    from: b\n  b:\n    from: a\n", 3, 11 },
        { "missing image", "images:\n  a:\n    from: nothere\n", 3, 11 },
        { "missing copy source", "images:\n  a:\n    from: scratch\n    steps:\n      - copy: nothere.txt\n        to: /x\n", 5, 15 },
        { "copy source outside the context", "images:\n  a:\n    from: scratch\n    steps:\n      - copy: ../outside.txt\n        to: /x\n", 5, 15 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_bad_definition_exits_2_with_file_line_column_and_leaves_the_store_unchanged(string what, string yaml, int line, int column)
    {
        using var ctx = new TinyContext(yaml);
        var outside = Path.Combine(Path.GetDirectoryName(ctx.Path)!, "outside.txt");
        File.WriteAllText(outside, "secret");
        var before = Snapshot(_store.Path);
        KilnProcess.Result r;
        try
        {
            r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        }
        finally
        {
            File.Delete(outside);
        }
        Assert.True(r.ExitCode == 2, $"{what}: exit {r.ExitCode}\n{r.All}");
        var location = new Regex(Regex.Escape(ctx.Yaml) + @":(\d+):(\d+)");
        var found = location.Matches(r.Stderr).Select(m => (int.Parse(m.Groups[1].Value), int.Parse(m.Groups[2].Value))).ToList();
        Assert.True(found.Contains((line, column)), $"{what}: no {ctx.Yaml}:{line}:{column} in\n{r.Stderr}");
        Assert.Equal(before, Snapshot(_store.Path));
    }

    [Fact]
    public void A_bad_definition_does_not_create_a_missing_store()
    {
        using var ctx = new TinyContext("images:\n  a:\n    frm: scratch\n");
        var missing = Path.Combine(_store.Path, "not-yet");
        var r = KilnProcess.Run(missing, "build", ctx.Path);
        Assert.Equal(2, r.ExitCode);
        Assert.False(Directory.Exists(missing));
    }

    [Fact]
    public void An_unknown_option_or_command_exits_2()
    {
        Assert.Equal(2, KilnProcess.Run(_store.Path, "build", "--frobnicate").ExitCode);
        Assert.Equal(2, KilnProcess.Run(_store.Path, "frobnicate").ExitCode);
        Assert.Equal(2, KilnProcess.Run(_store.Path, "inspect", "no-such-image").ExitCode);
    }

    /// <summary>export -o is checked by the exporter (see OutputsTests).</summary>
    [Fact]
    public void A_path_argument_that_does_not_exist_exits_2_naming_it_before_any_work()
    {
        using var ctx = new TinyContext("images:\n  tiny:\n    from: scratch\n    steps:\n" + TinyContext.RootStep + "      - run: echo more\n");
        using var empty = new TempDir("kiln-empty");
        var before = Snapshot(_store.Path);
        var cases = new (string[] Args, string Says)[]
        {
            (["build", "/nonexistent"], "kiln build: no such file or directory: /nonexistent"),
            (["build", empty.Path], $"kiln build: no kiln.yaml or kiln.yml in {empty.Path}"),
            (["test", "tiny", "-f", "/nonexistent"], "kiln test: no such file or directory: /nonexistent"),
            (["build", ctx.Path, "--trace", "/nonexistent/trace.json"], "kiln build: cannot write --trace /nonexistent/trace.json: folder /nonexistent does not exist"),
            (["build", ctx.Path, "--trace", empty.Path], $"kiln build: cannot write --trace {empty.Path}: it is a folder"),
            (["build", ctx.Path, "--junit", "/nonexistent/j.xml"], "kiln build: cannot write --junit /nonexistent/j.xml: folder /nonexistent does not exist"),
            (["test", "tiny", "-f", ctx.Path, "--junit", "/nonexistent/j.xml"], "kiln test: cannot write --junit /nonexistent/j.xml: folder /nonexistent does not exist"),
        };
        foreach (var (args, says) in cases)
        {
            var r = KilnProcess.Run(_store.Path, args);
            Assert.True(r.ExitCode == 2, $"kiln {string.Join(' ', args)}: exit {r.ExitCode}\n{r.All}");
            Assert.Equal(says, r.Stderr.TrimEnd());
        }
        // Nothing was built (the --trace and --junit cases would have built a step) and nothing was written.
        Assert.Equal(before, Snapshot(_store.Path));
        Assert.Empty(Directory.EnumerateFileSystemEntries(empty.Path));
    }

    [Fact]
    public void An_unknown_key_near_a_known_one_names_it()
    {
        using var ctx = new TinyContext("images:\n  a:\n    from: scratch\n    steps:\n      - pakages: [curl]\n");
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"{ctx.Yaml}:5:9: unknown key `pakages` in a step (expected ", r.Stderr);
        Assert.Contains("; did you mean `packages`?", r.Stderr);
    }

    /// <summary>Every path under the store with its type, mode, size and content hash.</summary>
    private static string Snapshot(string root)
    {
        var lines = new List<string>();
        foreach (var path in Directory.EnumerateFileSystemEntries(root, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 }).Order(StringComparer.Ordinal))
        {
            var info = new FileInfo(path);
            var rel = Path.GetRelativePath(root, path);
            if (info.LinkTarget is not null)
            {
                lines.Add($"{rel} -> {info.LinkTarget}");
            }
            else if (Directory.Exists(path))
            {
                lines.Add($"{rel}/ {info.UnixFileMode}");
            }
            else if ((info.Attributes & FileAttributes.Device) == 0 && info.Exists)
            {
                using var s = File.OpenRead(path);
                lines.Add($"{rel} {info.UnixFileMode} {info.Length} {Convert.ToHexString(SHA256.HashData(s))}");
            }
            else
            {
                lines.Add($"{rel} special");
            }
        }
        return string.Join('\n', lines);
    }
}
