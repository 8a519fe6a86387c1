using System.Text.Json;

namespace Kiln.Cli.Tests;

/// <summary>The pair test under qemu: examples/runner (on the base examples/web's fixture bootstrapped) exported as a
/// raw disk and booted with the seed ISO on a second drive; cloud-init fetches the package from kiln on the host.</summary>
[Collection(ExampleWebCollection.Name)]
[Trait("Tier", "Slow")] // builds examples/runner and boots it under qemu (TCG on this machine kind)
public sealed class ServicePairVmTests
{
    private readonly ExampleWebFixture _web;
    private readonly Xunit.Abstractions.ITestOutputHelper _output;

    public ServicePairVmTests(ExampleWebFixture web, Xunit.Abstractions.ITestOutputHelper output)
    {
        _web = web;
        _output = output;
        Assert.True(web.Cold.ExitCode == 0, "cold build of examples/web failed:\n" + web.Cold.All);
    }

    [Fact]
    public void A_package_installed_by_cloud_init_from_a_seed_drive_answers_in_a_vm_and_the_pair_is_recorded()
    {
        using var ctx = new TempDir("kiln-runner-vm-ctx");
        ExampleWebFixture.CopyTree(Path.Combine(ExampleWebFixture.RepoRoot, "examples", "runner"), ctx.Path);
        var store = _web.Store.Path;
        var build = KilnProcess.Run(store, "build", ctx.Path);
        Assert.True(build.ExitCode == 0, build.All);
        Assert.Equal(1, KilnProcess.Run(store, "pairs", "--check", "hello", "--phase", "vm", "-f", ctx.Path).ExitCode);

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var test = KilnProcess.Run(store, "test", "hello", "--phase", "vm", "--json", "-f", ctx.Path);
        _output.WriteLine($"vm pair test of hello: {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.True(test.ExitCode == 0, test.All);
        using (var doc = JsonDocument.Parse(test.Stdout))
        {
            var record = doc.RootElement;
            Assert.Equal("vm", record.GetProperty("phase").GetString());
            Assert.True(record.GetProperty("passed").GetBoolean(), test.Stdout);
            var checks = record.GetProperty("checks").EnumerateArray()
                .Select(c => c.GetProperty("section").GetString() + " " + c.GetProperty("subject").GetString()).ToList();
            // cloud-init ended and its user-data validated in the guest; the service's own checks answered, the http
            // one from the host through a forwarded port.
            Assert.Contains("cloud-init status", checks);
            Assert.Contains("cloud-init schema user-data", checks);
            Assert.Contains("http http://127.0.0.1:8081/", checks);
            Assert.Contains("service hello", checks);
        }
        var gate = KilnProcess.Run(store, "pairs", "--check", "hello", "--phase", "vm", "-f", ctx.Path);
        Assert.True(gate.ExitCode == 0, gate.All);
    }
}
