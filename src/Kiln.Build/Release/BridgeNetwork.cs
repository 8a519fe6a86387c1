using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Kiln.Build.Sandbox;

namespace Kiln.Build.Release;

/// <summary>Joins instances' network namespaces to a host bridge with Debian's containernetworking-plugins: the
/// <c>bridge</c> plugin (a veth pair, one end in the namespace as eth0, the other on the bridge, which is the
/// gateway) and <c>host-local</c> IPAM, run as CNI plugins (CNI_COMMAND, a netconf on stdin). One bridge and one /24
/// per store, both named after the store's path so that two stores on a host do not share addresses; host-local
/// keeps its leases in the store.</summary>
internal sealed class BridgeNetwork
{
    private const string CniVersion = "1.0.0";
    private readonly string _dataDir;

    public BridgeNetwork(string releaseRoot)
    {
        _dataDir = Path.Combine(releaseRoot, "cni");
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(releaseRoot));
        BridgeName = "kiln" + Convert.ToHexStringLower(hash.AsSpan(0, 3));
        // 10.200.0.0 - 10.249.255.0: out of the way of the usual 10.0 and 10.1 LANs.
        Subnet = $"10.{200 + hash[3] % 50}.{hash[4]}.0/24";
    }

    public string BridgeName { get; }
    public string Subnet { get; }

    private string NetConf()
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("cniVersion", CniVersion);
            w.WriteString("name", "kiln-release");
            w.WriteString("type", "bridge");
            w.WriteString("bridge", BridgeName);
            w.WriteBoolean("isGateway", true);
            w.WriteBoolean("ipMasq", false);
            w.WriteStartObject("ipam");
            w.WriteString("type", "host-local");
            w.WriteStartArray("ranges");
            w.WriteStartArray();
            w.WriteStartObject();
            w.WriteString("subnet", Subnet);
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteEndArray();
            w.WriteString("dataDir", _dataDir);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>Attaches the namespace of <paramref name="netPid"/>; returns its address and the host's veth.</summary>
    public async Task<(string Address, string HostVeth)> AddAsync(string id, int netPid, CancellationToken ct)
    {
        var (code, stdout, stderr) = await RunAsync("ADD", id, $"/proc/{netPid}/ns/net", ct).ConfigureAwait(false);
        if (code != 0)
        {
            throw ReleaseException.Network($"the CNI bridge plugin could not attach instance {id}: {Error(stdout, stderr)}");
        }
        using var doc = JsonDocument.Parse(stdout);
        var root = doc.RootElement;
        var address = root.GetProperty("ips")[0].GetProperty("address").GetString()!.Split('/')[0];
        var veth = root.GetProperty("interfaces").EnumerateArray()
            .Where(i => !i.TryGetProperty("sandbox", out _))
            .Select(i => i.GetProperty("name").GetString()!)
            .FirstOrDefault(n => n != BridgeName) ?? "";
        return (address, veth);
    }

    /// <summary>Releases the address of <paramref name="id"/> (and removes its veth, if its namespace is gone the
    /// kernel has). Never given a namespace path: a pid of a stopped instance may name another process's namespace
    /// by now, and the plugin would delete that one's eth0.</summary>
    public async Task DelAsync(string id, CancellationToken ct)
    {
        var (code, stdout, stderr) = await RunAsync("DEL", id, "", ct).ConfigureAwait(false);
        if (code != 0)
        {
            throw ReleaseException.Network($"the CNI bridge plugin could not release instance {id}: {Error(stdout, stderr)}");
        }
    }

    /// <summary>Removes the bridge once no target of the store uses it.</summary>
    public async Task RemoveBridgeAsync(CancellationToken ct)
    {
        if (!Directory.Exists($"/sys/class/net/{BridgeName}"))
        {
            return;
        }
        var psi = new ProcessStartInfo(HostPrograms.Resolve(HostPrograms.Ip)) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "link", "delete", BridgeName, "type", "bridge" })
        {
            psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi)!;
        await p.WaitForExitAsync(ct).ConfigureAwait(false);
    }

    private static string Error(string stdout, string stderr)
    {
        try
        {
            using var doc = JsonDocument.Parse(stdout);
            return doc.RootElement.TryGetProperty("msg", out var msg) ? msg.GetString() + (doc.RootElement.TryGetProperty("details", out var d) ? ": " + d.GetString() : "") : stdout;
        }
        catch (JsonException)
        {
            return (stdout + stderr).Trim();
        }
    }

    private async Task<(int Code, string Stdout, string Stderr)> RunAsync(string command, string id, string netns, CancellationToken ct)
    {
        var plugin = HostPrograms.Resolve(HostPrograms.CniBridge);
        var psi = new ProcessStartInfo(plugin)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.Environment["CNI_COMMAND"] = command;
        psi.Environment["CNI_CONTAINERID"] = id;
        psi.Environment["CNI_NETNS"] = netns;
        psi.Environment["CNI_IFNAME"] = "eth0";
        psi.Environment["CNI_PATH"] = Path.GetDirectoryName(plugin)!;
        Directory.CreateDirectory(_dataDir);
        InheritedDescriptors.CloseOnExec();
        using var p = Process.Start(psi)!;
        await p.StandardInput.WriteAsync(NetConf()).ConfigureAwait(false);
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync(ct);
        var stderr = p.StandardError.ReadToEndAsync(ct);
        await p.WaitForExitAsync(ct).ConfigureAwait(false);
        return (p.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
    }
}

