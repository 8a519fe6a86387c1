using System.Runtime.InteropServices;
using System.Text.Json;
using Kiln.Build.Definition;
using Kiln.Build.Store;
using Kiln.Build.Testing;
using Kiln.Build.Testing.Boot;
using Kiln.Build.Testing.Spec;
using Kiln.Oci;

namespace Kiln.Build.Release;

/// <summary>The detached process that owns one serving instance: it boots the image as the boot phase does (its
/// own pid, mount and network namespaces on an overlay of the store's snapshots), waits for its exposed ports, runs
/// the spec's boot-phase checks against it, writes <c>ready.json</c>, and then keeps it until SIGTERM or until the
/// instance exits. Stopping it stops the instance and removes its files; a SIGKILL leaves only its scratch folder,
/// which the store removes as it does every dead process's.</summary>
public static class InstanceHost
{
    public static async Task<int> RunAsync(string storeRoot, string definitionPath, string image, Digest digest, string instanceDir, CancellationToken ct)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
        {
            c.Cancel = true;
            stop.Cancel();
        });
        Directory.CreateDirectory(instanceDir);
        var readyPath = Path.Combine(instanceDir, "ready.json");
        using var store = KilnStore.Open(storeRoot);
        var file = DefinitionLoader.Load(definitionPath);
        var definition = file.Images.FirstOrDefault(i => i.Name == image)
            ?? throw ReleaseException.BadInput($"{file.Path} defines no image named '{image}'");
        var checks = definition.Test is { } test ? TestSpecLoader.Load(test, definition.Boot).In(TestPhase.Boot).ToList() : [];
        var state = await store.Content.ReadImageStateAsync(digest, ct).ConfigureAwait(false);
        Instance? instance = null;
        try
        {
            var failures = new List<string>();
            try
            {
                instance = await Instance.StartAsync(store, state, new InstanceOptions { Systemd = definition.Boot == BootMode.Systemd }, stop.Token).ConfigureAwait(false);
                await instance.WaitForPortsAsync(BootPhase.ExposedPorts(state), TimeSpan.FromSeconds(30), stop.Token).ConfigureAwait(false);
                foreach (var report in await BootPhase.CheckAsync(instance, checks, stop.Token).ConfigureAwait(false))
                {
                    failures.AddRange(report.Failures.Select(f => $"{report.Name}: {f.Matcher}: expected {f.Expected}, got {f.Actual}"));
                }
            }
            catch (InstanceException e)
            {
                failures.Add(e.Message);
            }
            var ready = new InstanceReady { HostPid = Environment.ProcessId, NetPid = instance?.Pid ?? 0, Passed = failures.Count == 0, Failures = failures };
            var temp = readyPath + ".tmp";
            await File.WriteAllBytesAsync(temp, JsonSerializer.SerializeToUtf8Bytes(ready, ReleaseJsonContext.Default.InstanceReady), CancellationToken.None).ConfigureAwait(false);
            File.Move(temp, readyPath, overwrite: true);
            if (failures.Count > 0 || instance is null)
            {
                return 1;
            }
            try
            {
                await Task.WhenAny(instance.Exited, Task.Delay(Timeout.Infinite, stop.Token)).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
            return stop.IsCancellationRequested ? 0 : 1;
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            return 0;
        }
        finally
        {
            if (instance is not null)
            {
                await instance.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>What the host wrote once its instance was up and checked, or null while it works.</summary>
    internal static InstanceReady? ReadReady(string instanceDir)
    {
        try
        {
            return JsonSerializer.Deserialize(File.ReadAllBytes(Path.Combine(instanceDir, "ready.json")), ReleaseJsonContext.Default.InstanceReady);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or JsonException)
        {
            return null;
        }
    }
}
