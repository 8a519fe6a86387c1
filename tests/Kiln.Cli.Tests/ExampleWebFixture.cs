namespace Kiln.Cli.Tests;

/// <summary>The test classes that share one cold build of examples/web (they run one after another).</summary>
[CollectionDefinition(Name)]
public sealed class ExampleWebCollection : ICollectionFixture<ExampleWebFixture>
{
    public const string Name = "examples/web";
}

/// <summary>One cold build of examples/web (bootstrap and all) per test run, shared by the tests that
/// need a real Debian image. The context is a copy, so tests may change it.</summary>
public sealed class ExampleWebFixture : IDisposable
{
    public ExampleWebFixture()
    {
        Store = new TempDir("kiln-web-store");
        Context = new TempDir("kiln-web-ctx");
        CopyTree(ExamplePath, Context.Path);
        // The cold build is the README's own command, run from the repository root.
        Cold = KilnProcess.RunReadmeCommand(RepoRoot, Store.Path, "build", "--json", "examples/web");
    }

    public static string RepoRoot
    {
        get
        {
            var dir = AppContext.BaseDirectory;
            while (!File.Exists(Path.Combine(dir, "Kiln.slnx")))
            {
                dir = Path.GetDirectoryName(dir) ?? throw new InvalidOperationException("repository root not found");
            }
            return dir;
        }
    }

    public static string ExamplePath => Path.Combine(RepoRoot, "examples", "web");

    public TempDir Store { get; }
    public TempDir Context { get; }
    public KilnProcess.Result Cold { get; }

    public static void CopyTree(string from, string to)
    {
        var r = KilnProcess.Tool("cp", "-a", from + "/.", to);
        if (r.ExitCode != 0)
        {
            throw new IOException(r.All);
        }
    }

    public void Dispose()
    {
        Store.Dispose();
        Context.Dispose();
    }
}
