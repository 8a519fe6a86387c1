using System.Text.Json;

namespace Kiln.Cli.Tests;

/// <summary><c>minimize: from-tests</c> on a tiny busybox web server: what its spec touches stays, the rest goes, the
/// minimized image passes the spec and takes the name; a rebuild records nothing; a check the recording cannot see
/// (a bare existence test) fails the retest, and the report names the dropped file.</summary>
public sealed class MinimizeTests : IDisposable
{
    private readonly TempDir _store = new("kiln-store");

    public void Dispose() => _store.Dispose();

    private static string Yaml(string extraCheck) =>
        "images:\n  srv:\n    from: scratch\n    steps:\n" + TinyContext.RootStep +
        "      - copy: files/\n        to: /\n" +
        "    config:\n      cmd: [/bin/busybox, httpd, -f, -p, \"8080\", -h, /www]\n      expose: [8080]\n" +
        "    minimize: {from-tests: true, keep: [/etc/keepme]}\n" +
        "    test:\n" +
        "      http: {\"http://127.0.0.1:8080/index.html\": {body: [served]}}\n" +
        "      command:\n" +
        "        \"cat /srv/data/used.txt\": {stdout: [used]}\n" + extraCheck;

    [Fact]
    [Trait("Tier", "Slow")]
    public void From_tests_keeps_what_the_spec_touches_and_a_check_it_cannot_see_fails_the_retest()
    {
        using var ctx = new TinyContext(Yaml(""));
        ctx.Write("files/www/index.html", "served by busybox\n");
        ctx.Write("files/www/other.html", "never asked for\n");
        ctx.Write("files/srv/data/used.txt", "used\n");
        ctx.Write("files/srv/data/unused.txt", "unused\n");
        ctx.Write("files/srv/feature/mod.so", "a module only a later check needs\n");
        ctx.Write("files/etc/keepme", "kept by keep:\n");

        var first = KilnProcess.Run(_store.Path, "build", "--json", ctx.Path);
        Assert.True(first.ExitCode == 0, first.All);
        var minimized = Image(first).GetProperty("minimized");
        Assert.False(minimized.GetProperty("cached").GetBoolean());
        Assert.True(minimized.GetProperty("filesAfter").GetInt32() < minimized.GetProperty("filesBefore").GetInt32());
        Assert.Contains(Image(first).GetProperty("tests").EnumerateArray(), p => p.GetProperty("phase").GetString() == "minimized boot");

        var report = Report(_store.Path, "srv");
        var kept = Files(report, "kept");
        var dropped = Files(report, "dropped");
        Assert.Contains("/bin/busybox", kept);
        Assert.Contains("/www/index.html", kept);
        Assert.Contains("/srv/data/used.txt", kept);
        Assert.Contains("/etc/keepme", kept);
        Assert.Contains("/bin/sh", kept); // the shell of the command checks
        Assert.Contains("/www/other.html", dropped);
        Assert.Contains("/srv/data/unused.txt", dropped);
        Assert.Contains("/srv/feature/mod.so", dropped);
        Assert.True(report.GetProperty("passed").GetBoolean());

        // The name is the minimized image, of one layer; the full one stays as srv.full.
        Assert.Single(StoreReader.LayerDigests(_store.Path, "srv"));
        Assert.Equal(2, StoreReader.LayerDigests(_store.Path, "srv.full").Count);
        var inspect = KilnProcess.Run(_store.Path, "inspect", "srv");
        Assert.True(inspect.ExitCode == 0, inspect.All);
        Assert.Contains("Minimized:", inspect.Stdout);

        // A rebuild changes nothing: neither a recording nor a new minimized image.
        var again = KilnProcess.Run(_store.Path, "build", "--json", ctx.Path);
        Assert.True(again.ExitCode == 0, again.All);
        Assert.True(Image(again).GetProperty("minimized").GetProperty("cached").GetBoolean());
        Assert.Equal(Image(first).GetProperty("digest").GetString(), Image(again).GetProperty("digest").GetString());

        // `test -e` only stats: the recording does not see it, the retest does.
        ctx.Write("kiln.yaml", Yaml("        \"test -e /srv/feature/mod.so\": {exit-status: 0}\n"));
        var later = KilnProcess.Run(_store.Path, "build", "--json", ctx.Path);
        Assert.True(later.ExitCode == 1, later.All);
        Assert.True(Image(later).GetProperty("rejected").GetBoolean());
        var failed = Report(_store.Path, "srv.rejected");
        Assert.False(failed.GetProperty("passed").GetBoolean());
        var failure = Assert.Single(failed.GetProperty("failures").EnumerateArray());
        Assert.Equal("command test -e /srv/feature/mod.so", failure.GetProperty("check").GetString());
        Assert.Equal("/srv/feature/mod.so", failure.GetProperty("droppedNear")[0].GetString());
        var text = KilnProcess.Run(_store.Path, "minimize-report", "srv.rejected");
        Assert.True(text.ExitCode == 0, text.All);
        Assert.Contains("dropped near it: /srv/feature/mod.so", text.Stdout);
        Leftovers.AssertNone(_store.Path);
    }

    private static JsonElement Image(KilnProcess.Result r)
    {
        using var doc = JsonDocument.Parse(r.Stdout);
        return doc.RootElement.GetProperty("images")[0].Clone();
    }

    private static JsonElement Report(string store, string image)
    {
        var r = KilnProcess.Run(store, "minimize-report", "--json", image);
        Assert.True(r.ExitCode == 0, r.All);
        using var doc = JsonDocument.Parse(r.Stdout);
        return doc.RootElement.Clone();
    }

    private static HashSet<string> Files(JsonElement report, string which) =>
        report.GetProperty(which).EnumerateArray().SelectMany(p => p.GetProperty("files").EnumerateArray()).Select(f => f.GetString()!).ToHashSet();
}

/// <summary>examples/web's web minimized from its tests, and by the profiles alone: both keep serving the site and pass
/// the full spec (their "minimized" phases), each smaller than web.</summary>
[Collection(ExampleWebCollection.Name)]
[Trait("Tier", "Slow")] // builds on examples/web: a Debian bootstrap and packages from the mirror
public sealed class MinimizeWebTests
{
    private readonly ExampleWebFixture _web;
    private readonly Xunit.Abstractions.ITestOutputHelper _output;

    public MinimizeWebTests(ExampleWebFixture web, Xunit.Abstractions.ITestOutputHelper output)
    {
        _web = web;
        _output = output;
        Assert.True(web.Cold.ExitCode == 0, "cold build of examples/web failed:\n" + web.Cold.All);
    }

    [Fact]
    public void Web_minimized_from_its_tests_and_by_profiles_keeps_serving_and_passes_its_spec()
    {
        using var ctx = new TempDir("kiln-web-ctx");
        ExampleWebFixture.CopyTree(ExampleWebFixture.ExamplePath, ctx.Path);
        File.AppendAllText(Path.Combine(ctx.Path, "kiln.yaml"), """

              web-min:
                from: web
                test: tests/web.yaml
                minimize: {from-tests: true}

              web-slim:
                from: web
                test: tests/web.yaml
                minimize: {profiles: [docs, man, locales, apt-lists, caches, logs]}

            """);
        var r = KilnProcess.Run(_web.Store.Path, "build", "--json", "--no-outputs", "-t", "web-min", "-t", "web-slim", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
        using var doc = JsonDocument.Parse(r.Stdout);
        var images = doc.RootElement.GetProperty("images").EnumerateArray().ToDictionary(i => i.GetProperty("name").GetString()!, i => i.Clone());
        foreach (var name in new[] { "web-min", "web-slim" })
        {
            var image = images[name];
            var phases = image.GetProperty("tests").EnumerateArray().Select(p => p.GetProperty("phase").GetString()).ToList();
            Assert.Contains("minimized boot", phases); // the http check of the site, against the minimized image
            var m = image.GetProperty("minimized");
            long before = m.GetProperty("bytesBefore").GetInt64(), after = m.GetProperty("bytesAfter").GetInt64();
            Assert.True(after < before, $"{name}: {after} bytes after, {before} before");
            var inspect = KilnProcess.Run(_web.Store.Path, "inspect", "--json", name);
            Assert.True(inspect.ExitCode == 0, inspect.All);
            using var i = JsonDocument.Parse(inspect.Stdout);
            var layers = i.RootElement.GetProperty("layers").EnumerateArray().ToList();
            Assert.Single(layers);
            var sizes = i.RootElement.GetProperty("minimized");
            _output.WriteLine($"{name}: files {m.GetProperty("filesBefore")} -> {m.GetProperty("filesAfter")}, bytes {before} -> {after}, " +
                $"layers {sizes.GetProperty("layerBytesBefore")} -> {sizes.GetProperty("layerBytesAfter")} (compressed)");
        }
        // From the tests keeps less than the profiles do: nginx's own files, not every package's.
        Assert.True(images["web-min"].GetProperty("minimized").GetProperty("bytesAfter").GetInt64()
            < images["web-slim"].GetProperty("minimized").GetProperty("bytesAfter").GetInt64());
    }
}
