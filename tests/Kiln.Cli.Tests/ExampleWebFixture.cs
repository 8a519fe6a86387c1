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
        // The second cold build, into an empty store, needs nothing but its own store and a copy of the example, so it
        // starts now, beside the first rather than after it: after it, it ended last of the whole run. At a lower
        // priority, so that it takes what the first build and the other tests leave of the CPU.
        SecondStore = new TempDir("kiln-web-store2");
        SecondContext = new TempDir("kiln-web-ctx2");
        CopyTree(ExamplePath, SecondContext.Path);
        var second = KilnProcess.StartInfo(SecondStore.Path, "build", "--json", "--no-outputs", SecondContext.Path);
        second.ArgumentList.Insert(0, second.FileName);
        second.ArgumentList.Insert(0, "10");
        second.ArgumentList.Insert(0, "-n");
        second.FileName = "nice";
        Second = Task.Run(() => KilnProcess.Run(second, TimeSpan.FromMinutes(15)));
        // The cold build is the README's own command, run from the repository root.
        Cold = KilnProcess.RunReadmeCommand(RepoRoot, Store.Path, "build", "--json", "examples/web");
        // What the reproducibility test compares, taken now: later tests rebuild images in this store.
        ColdImages = new[] { "base", "web", "web-systemd" }
            .Where(n => Cold.ExitCode == 0)
            .ToDictionary(n => n, n => (StoreReader.LayerDigests(Store.Path, n), StoreReader.ManifestDigest(Store.Path, n)));
        // server's Vagrant box, written while the second cold build runs and before any test can move the name server.
        // The example's outputs are the qcow2 only: a box adds an apt step on top of each new server image, which
        // the one-second edit loop (a site change, `kiln build -t server`) must not wait for.
        Boxes = new TempDir("kiln-web-box");
        ServerBox = Boxes.Sub("server.box");
        BoxExport = Cold.ExitCode == 0
            ? KilnProcess.Run(Store.Path, "export", "server", "--format", "vagrant", "-o", ServerBox, "--json")
            : new KilnProcess.Result(-1, "", "not run: the first cold build failed");
        // Read now: later tests rebuild server (a site change) and move its name.
        ServerAfterBoxExport = Cold.ExitCode == 0 ? StoreReader.ManifestDigest(Store.Path, "server") : null;
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

    /// <summary>Each image's layer digests and manifest digest right after the cold build.</summary>
    public IReadOnlyDictionary<string, (IReadOnlyList<string> Layers, string Manifest)> ColdImages { get; }

    /// <summary>A second cold build of the example into an empty store, started with the first one.</summary>
    public Task<KilnProcess.Result> Second { get; }

    public TempDir SecondStore { get; }

    /// <summary>`kiln export server --format vagrant` of the cold build's server, and the box it wrote.</summary>
    public KilnProcess.Result BoxExport { get; }

    /// <summary>The digest the store's `server` named right after <see cref="BoxExport"/>.</summary>
    public string? ServerAfterBoxExport { get; }

    public string ServerBox { get; }

    private TempDir Boxes { get; }
    private TempDir SecondContext { get; }

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
        // KilnProcess.Run ends the build at its time-out, so this wait is bounded.
        try
        {
            Second.Wait();
        }
        catch (AggregateException)
        {
        }
        SecondStore.Dispose();
        SecondContext.Dispose();
        Boxes.Dispose();
        Store.Dispose();
        Context.Dispose();
    }
}
