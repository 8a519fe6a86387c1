using System.Diagnostics;
using Kiln.Build.Store;
using Kiln.Build.Testing.Boot;

namespace Kiln.Cli.Tests;

/// <summary>The boot phase's instance: an image started in its own namespaces, reached through them, and gone
/// without a trace once stopped.</summary>
public sealed class InstanceTests : IDisposable
{
    private readonly TempDir _store = new("kiln-store");

    public void Dispose() => _store.Dispose();

    private async Task<(KilnStore Store, ImageState Image)> BuildAsync(TinyContext ctx, string name = "tiny")
    {
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
        var store = KilnStore.Open(_store.Path);
        var state = await store.Content.ReadImageStateAsync(store.Names.TryGetTag(name)!.Digest);
        return (store, state);
    }

    private static TinyContext Httpd(string cmd = "[/bin/busybox, httpd, -f, -p, \"8080\", -h, /www]") => new(
        "images:\n  tiny:\n    from: scratch\n    steps:\n" + TinyContext.RootStep +
        "      - run: mkdir -p /www && echo 'hello from the instance' > /www/index.html\n" +
        $"    config:\n      cmd: {cmd}\n      expose: [8080]\n");

    [Fact]
    public async Task An_instance_serves_http_inside_its_own_network_namespace_and_leaves_nothing_behind()
    {
        using var ctx = Httpd();
        var (store, image) = await BuildAsync(ctx);
        string netns;
        await using (var instance = await Instance.StartAsync(store, image, new InstanceOptions()))
        {
            await instance.WaitForPortsAsync([("tcp", 8080)], TimeSpan.FromSeconds(20));
            Assert.True(await instance.IsListeningAsync("tcp", 8080));
            Assert.False(await instance.IsListeningAsync("tcp", 8081));
            var page = await instance.HttpGetAsync(new Uri("http://127.0.0.1:8080/index.html"), TimeSpan.FromSeconds(10));
            Assert.Equal(200, page.Status);
            Assert.Contains("hello from the instance", page.Body);

            var exec = await instance.ExecAsync("hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /sys/class/net", TimeSpan.FromSeconds(10));
            Assert.True(exec.ExitCode == 0, exec.Stderr);
            Assert.Equal(["kiln-instance", "/bin/busybox httpd -f -p 8080 -h /www ", "lo"], exec.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));

            netns = File.ResolveLinkTarget($"/proc/{instance.Pid}/ns/net", false)!.FullName;
            Assert.NotEqual(File.ResolveLinkTarget("/proc/self/ns/net", false)!.FullName, netns);
        }
        Leftovers.AssertNone(_store.Path);
        foreach (var dir in Directory.GetDirectories("/proc").Where(d => int.TryParse(Path.GetFileName(d), out _)))
        {
            try
            {
                Assert.NotEqual(netns, File.ResolveLinkTarget(Path.Combine(dir, "ns/net"), false)?.FullName);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
        store.Dispose();
    }

    [Fact]
    public async Task What_an_instance_writes_never_reaches_the_image()
    {
        using var ctx = Httpd();
        var (store, image) = await BuildAsync(ctx);
        var digest = store.Names.TryGetTag("tiny")!.Digest;
        await using (var instance = await Instance.StartAsync(store, image, new InstanceOptions()))
        {
            var exec = await instance.ExecAsync("echo changed > /www/index.html && touch /etc/x", TimeSpan.FromSeconds(10));
            Assert.Equal(0, exec.ExitCode);
        }
        Assert.Equal(digest, store.Names.TryGetTag("tiny")!.Digest);
        var snapshotFiles = image.Config.RootFs.DiffIds.Select(d => Path.Combine(store.Snapshots.SnapshotPath(d), "www/index.html")).Where(File.Exists).ToList();
        Assert.All(snapshotFiles, f => Assert.Equal("hello from the instance\n", File.ReadAllText(f)));
        Assert.DoesNotContain(image.Config.RootFs.DiffIds, d => File.Exists(Path.Combine(store.Snapshots.SnapshotPath(d), "etc/x")));
        store.Dispose();
    }

    [Fact]
    public async Task A_port_that_never_listens_times_out_with_the_instances_output()
    {
        using var ctx = Httpd("[/bin/sh, -c, \"echo started-but-not-listening; sleep 600\"]");
        var (store, image) = await BuildAsync(ctx);
        await using (var instance = await Instance.StartAsync(store, image, new InstanceOptions { StopTimeout = TimeSpan.FromMilliseconds(200) }))
        {
            var clock = Stopwatch.StartNew();
            var ex = await Assert.ThrowsAsync<InstanceException>(() => instance.WaitForPortsAsync([("tcp", 8080)], TimeSpan.FromSeconds(1)));
            Assert.Contains("tcp:8080", ex.Message);
            Assert.Contains("started-but-not-listening", ex.Message);
            Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30));
        }
        Leftovers.AssertNone(_store.Path);
        store.Dispose();
    }

    [Fact]
    public async Task An_instance_that_exits_early_is_reported_with_its_output()
    {
        using var ctx = Httpd("[/bin/sh, -c, \"echo cannot-start >&2; exit 7\"]");
        var (store, image) = await BuildAsync(ctx);
        var ex = await Assert.ThrowsAsync<InstanceException>(async () =>
        {
            await using var instance = await Instance.StartAsync(store, image, new InstanceOptions());
            await instance.WaitForPortsAsync([("tcp", 8080)], TimeSpan.FromSeconds(20));
        });
        Assert.Contains("cannot-start", ex.Message);
        Leftovers.AssertNone(_store.Path);
        store.Dispose();
    }
}
