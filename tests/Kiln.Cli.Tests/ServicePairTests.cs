using System.Text.Json;

namespace Kiln.Cli.Tests;

/// <summary>Services installed at boot by cloud-init on examples/runner: pair tests under systemd-nspawn, the gate, the
/// seed. A store of its own rather than the examples/web fixture's: in that collection the test ran after the cold
/// build and before every other test of it, the longest serial chain of the run; here it runs beside the chain.</summary>
[Trait("Tier", "Slow")] // bootstraps examples/runner's Debian base, boots it with systemd three times and once under qemu
public sealed class ServicePairTests : IDisposable
{
    private readonly TempDir _store = new("kiln-runner-store");
    private readonly Xunit.Abstractions.ITestOutputHelper _output;

    public ServicePairTests(Xunit.Abstractions.ITestOutputHelper output) => _output = output;

    public void Dispose() => _store.Dispose();

    private string Store => _store.Path;

    private static string RunnerPath => Path.Combine(ExampleWebFixture.RepoRoot, "examples", "runner");

    [Fact]
    public void A_package_installed_at_boot_answers_and_only_tested_pairs_pass_the_gate()
    {
        using var ctx = new TempDir("kiln-runner-ctx");
        ExampleWebFixture.CopyTree(RunnerPath, ctx.Path);
        // A second service whose postinst fails: its pair test must fail with cloud-init's own log.
        Directory.CreateDirectory(Path.Combine(ctx.Path, "broken", "DEBIAN"));
        File.WriteAllText(Path.Combine(ctx.Path, "broken", "DEBIAN", "control"),
            "Package: broken\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@localhost>\nDescription: fails to configure\n");
        var postinst = Path.Combine(ctx.Path, "broken", "DEBIAN", "postinst");
        File.WriteAllText(postinst, "#!/bin/sh\necho 'broken-postinst: refusing to configure' >&2\nexit 1\n");
        File.SetUnixFileMode(postinst, (UnixFileMode)0b111_101_101);
        File.AppendAllText(Path.Combine(ctx.Path, "kiln.yaml"),
            "  broken:\n    image: runner\n    package: broken/\n    test: {port: {\"tcp:8082\": {listening: true}}}\n"
            + "channels:\n  staging: [boot]\n");

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var build = KilnProcess.Run(Store, "build", "--json", ctx.Path);
        Assert.True(build.ExitCode == 0, build.All);
        _output.WriteLine($"build of runner: {clock.Elapsed.TotalSeconds:0.0} s");
        var first = Package(build, "hello");

        // Reproducible: the same folder with new mtimes gives the same .deb, and the pin does not move.
        File.SetLastWriteTimeUtc(Path.Combine(ctx.Path, "hello", "DEBIAN", "control"), DateTime.UtcNow);
        var again = KilnProcess.Run(Store, "build", "--json", ctx.Path);
        Assert.True(again.ExitCode == 0, again.All);
        Assert.Equal(first, Package(again, "hello"));

        // Never tested: refused, naming the pair.
        var refused = KilnProcess.Run(Store, "pairs", "--check", "hello", "-f", ctx.Path);
        Assert.True(refused.ExitCode == 1, refused.All);
        Assert.Contains("pair hello (image runner@", refused.Stderr);
        Assert.Contains("no passing test in phase boot", refused.Stderr);

        clock.Restart();
        var test = KilnProcess.Run(Store, "test", "hello", "--json", "-f", ctx.Path);
        _output.WriteLine($"pair test of hello: {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.True(test.ExitCode == 0, test.All);
        using (var doc = JsonDocument.Parse(test.Stdout))
        {
            var checks = doc.RootElement.GetProperty("checks").EnumerateArray()
                .Select(c => (Name: c.GetProperty("section").GetString() + " " + c.GetProperty("subject").GetString(), Passed: c.GetProperty("passed").GetBoolean()))
                .ToList();
            Assert.All(checks, c => Assert.True(c.Passed, c.Name));
            Assert.Contains(checks, c => c.Name == "cloud-init schema user-data");
            Assert.Contains(checks, c => c.Name == "http http://127.0.0.1:8081/");
            Assert.Equal(first, doc.RootElement.GetProperty("package").GetString());
        }
        Leftovers.AssertNone(Store);
        var allowed = KilnProcess.Run(Store, "pairs", "--check", "hello", "-f", ctx.Path);
        Assert.True(allowed.ExitCode == 0, allowed.All);
        var promoted = KilnProcess.Run(Store, "promote", "hello", "staging", "-f", ctx.Path);
        Assert.True(promoted.ExitCode == 0, promoted.All);
        Assert.Contains($"package {first}", promoted.Stdout);

        // A second version of the package: a new pair, refused until it too is tested.
        var control = Path.Combine(ctx.Path, "hello", "DEBIAN", "control");
        File.WriteAllText(control, File.ReadAllText(control).Replace("Version: 1.0", "Version: 1.1", StringComparison.Ordinal));
        var v2 = KilnProcess.Run(Store, "build", "--json", ctx.Path);
        Assert.True(v2.ExitCode == 0, v2.All);
        var second = Package(v2, "hello");
        Assert.NotEqual(first, second);
        var refusedV2 = KilnProcess.Run(Store, "pairs", "--check", "hello", "--json", "-f", ctx.Path);
        Assert.True(refusedV2.ExitCode == 1, refusedV2.All);
        Assert.Contains(second[7..19], refusedV2.Stderr);
        var promoteV2 = KilnProcess.Run(Store, "promote", "hello", "staging", "-f", ctx.Path);
        Assert.True(promoteV2.ExitCode == 1, promoteV2.All);
        Assert.Contains($"package {second}", promoteV2.Stderr);
        Assert.Contains("no passing boot pair test", promoteV2.Stderr);
        var testV2 = KilnProcess.Run(Store, "test", "hello", "-f", ctx.Path);
        Assert.True(testV2.ExitCode == 0, testV2.All);
        Assert.Equal(0, KilnProcess.Run(Store, "pairs", "--check", "hello", "-f", ctx.Path).ExitCode);
        Assert.Equal(0, KilnProcess.Run(Store, "promote", "hello", "staging", "-f", ctx.Path).ExitCode);
        var promotions = KilnProcess.Run(Store, "promotions", "hello", "--json");
        using (var doc = JsonDocument.Parse(promotions.Stdout))
        {
            Assert.Equal([first, second], doc.RootElement.EnumerateArray().Select(p => p.GetProperty("package").GetString()));
        }
        var pairs = KilnProcess.Run(Store, "pairs", "--json");
        using (var doc = JsonDocument.Parse(pairs.Stdout))
        {
            var tested = doc.RootElement.EnumerateArray().Where(p => p.GetProperty("passed").GetBoolean())
                .Select(p => p.GetProperty("package").GetString()).ToList();
            Assert.Contains(first, tested);
            Assert.Contains(second, tested);
        }

        // A broken package fails its pair with cloud-init's own output log, and nothing is left running.
        clock.Restart();
        var broken = KilnProcess.Run(Store, "test", "broken", "-f", ctx.Path);
        _output.WriteLine($"pair test of broken: {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.True(broken.ExitCode == 1, broken.All);
        Assert.Contains("/var/log/cloud-init-output.log", broken.Stderr);
        Assert.Contains("broken-postinst: refusing to configure", broken.Stderr);
        Leftovers.AssertNone(Store);
        Assert.Equal(1, KilnProcess.Run(Store, "pairs", "--check", "broken", "-f", ctx.Path).ExitCode);

        // The seed as an ISO labelled cidata, readable by isoinfo, and as a folder with the package beside it.
        var iso = Path.Combine(ctx.Path, "seed.iso");
        var seed = KilnProcess.Run(Store, "seed", "hello", "-o", iso, "--dir", Path.Combine(ctx.Path, "seed"), "-f", ctx.Path);
        Assert.True(seed.ExitCode == 0, seed.All);
        var info = KilnProcess.Tool("isoinfo", "-d", "-i", iso);
        Assert.Contains("Volume id: cidata", info.Stdout);
        var files = KilnProcess.Tool("isoinfo", "-R", "-f", "-i", iso);
        Assert.Contains("/user-data", files.Stdout);
        Assert.Contains("/meta-data", files.Stdout);
        Assert.StartsWith("#cloud-config\n", File.ReadAllText(Path.Combine(ctx.Path, "seed", "user-data")), StringComparison.Ordinal);
        Assert.Equal(second, "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(
            File.ReadAllBytes(Path.Combine(ctx.Path, "seed", "hello.deb")))));

        // Once in the suite under qemu (TCG here): runner exported as a raw disk, the seed ISO on a second drive,
        // cloud-init fetching the package from kiln on the host. Recorded as the pair's vm phase.
        Assert.Equal(1, KilnProcess.Run(Store, "pairs", "--check", "hello", "--phase", "vm", "-f", ctx.Path).ExitCode);
        clock.Restart();
        var vm = KilnProcess.Run(Store, "test", "hello", "--phase", "vm", "--json", "-f", ctx.Path);
        _output.WriteLine($"vm pair test of hello: {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.True(vm.ExitCode == 0, vm.All);
        using (var doc = JsonDocument.Parse(vm.Stdout))
        {
            var record = doc.RootElement;
            Assert.Equal("vm", record.GetProperty("phase").GetString());
            Assert.Equal(second, record.GetProperty("package").GetString());
            var checks = record.GetProperty("checks").EnumerateArray()
                .Select(c => c.GetProperty("section").GetString() + " " + c.GetProperty("subject").GetString()).ToList();
            // cloud-init ended and its user-data validated in the guest; the service's checks answered, http from the
            // host through a forwarded port.
            Assert.Contains("cloud-init status", checks);
            Assert.Contains("cloud-init schema user-data", checks);
            Assert.Contains("service hello", checks);
            Assert.Contains("http http://127.0.0.1:8081/", checks);
        }
        var vmGate = KilnProcess.Run(Store, "pairs", "--check", "hello", "--phase", "vm", "-f", ctx.Path);
        Assert.True(vmGate.ExitCode == 0, vmGate.All);
    }

    private static string Package(KilnProcess.Result build, string service)
    {
        using var doc = JsonDocument.Parse(build.Stdout);
        return doc.RootElement.GetProperty("services").EnumerateArray()
            .Single(s => s.GetProperty("name").GetString() == service).GetProperty("package").GetString()!;
    }
}
