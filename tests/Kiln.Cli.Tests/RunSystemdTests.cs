namespace Kiln.Cli.Tests;

/// <summary><c>kiln run --systemd</c> on examples/web's web-systemd (the fixture's store): the image's init boots,
/// nginx comes up as a unit, the published port answers on the host, and SIGTERM leaves nothing behind.</summary>
[Collection(ExampleWebCollection.Name)]
[Trait("Tier", "Slow")] // boots the fixture's Debian image with systemd
public sealed class RunSystemdTests
{
    private readonly ExampleWebFixture _web;

    public RunSystemdTests(ExampleWebFixture web)
    {
        _web = web;
        Assert.True(web.Cold.ExitCode == 0, "cold build of examples/web failed:\n" + web.Cold.All);
    }

    [Fact]
    public async Task Run_systemd_boots_the_init_serves_the_site_on_the_published_port_and_SIGTERM_leaves_nothing()
    {
        int port = LocalUseTests.FreePort();
        // --systemd given explicitly, without -f: the kiln.yaml is not read for the image's boot mode.
        using var kiln = LocalUseTests.LiveKiln.Start(_web.Store.Path, "run", "web-systemd", "--systemd", "-p", $"{port}:8080");
        kiln.WaitFor(l => l.Contains("is running", StringComparison.Ordinal), "the instance to run");
        string page = "";
        for (var clock = System.Diagnostics.Stopwatch.StartNew(); clock.Elapsed < TimeSpan.FromSeconds(30); await Task.Delay(200))
        {
            try
            {
                page = await LocalUseTests.GetAsync(port);
                break;
            }
            catch (HttpRequestException)
            {
                // nginx's unit may still be starting once the instance runs
            }
        }
        Assert.Contains("Hello from Kiln", page);
        kiln.Signal("TERM");
        Assert.Equal(130, kiln.WaitForExit());
        Leftovers.AssertNone(_web.Store.Path);
        Assert.False(LocalUseTests.Listening(port), $"port {port} still listens");
    }
}
