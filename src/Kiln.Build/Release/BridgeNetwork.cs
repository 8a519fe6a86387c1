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
/// per store, so that two stores on a host do not share addresses; host-local keeps its leases in the store.</summary>
/// <remarks>The name and subnet are derived from a hash of the store's path, and that hash can collide: a candidate
/// is taken only if no link of that name belongs to someone else (a bridge Kiln made carries its store's path as its
/// alias) and no route of another interface covers the subnet; otherwise the next candidate is tried. The choice is
/// recorded in the store (<c>kiln/release/cni/bridge</c>), so it stays put while the store's instances use it.</remarks>
internal sealed class BridgeNetwork
{
    private const string CniVersion = "1.0.0";
    private readonly string _dataDir;
    private readonly string _releaseRoot;
    private readonly Func<string, string?> _linkAlias;
    private readonly Func<string, string, bool> _subnetRoutedElsewhere;
    private (string Name, string Subnet)? _chosen;

    public BridgeNetwork(string releaseRoot)
        : this(releaseRoot, LinkAlias, SubnetRoutedElsewhere)
    {
    }

    /// <param name="linkAlias">The alias of the host's link of that name ("" when it has none), or null when there is
    /// no such link.</param>
    /// <param name="subnetRoutedElsewhere">Whether a route of an interface other than the bridge (the second
    /// argument) overlaps the subnet (the first).</param>
    internal BridgeNetwork(string releaseRoot, Func<string, string?> linkAlias, Func<string, string, bool> subnetRoutedElsewhere)
    {
        _releaseRoot = releaseRoot;
        _dataDir = Path.Combine(releaseRoot, "cni");
        _linkAlias = linkAlias;
        _subnetRoutedElsewhere = subnetRoutedElsewhere;
        // An alias holds at most 255 bytes; a longer path is named by its hash.
        Owner = releaseRoot.Length <= 200 ? "kiln " + releaseRoot : "kiln " + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(releaseRoot)));
    }

    /// <summary>The alias a bridge of this store carries.</summary>
    public string Owner { get; }

    public string BridgeName => Choose().Name;

    public string Subnet => Choose().Subnet;

    private string RecordPath => Path.Combine(_dataDir, "bridge");

    /// <summary>The n-th candidate: "kiln" and 6 hex digits, and a /24 in 10.200.0.0 - 10.249.255.0, out of the way of
    /// the usual 10.0 and 10.1 LANs.</summary>
    internal static (string Name, string Subnet) Candidate(string releaseRoot, int n)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(n == 0 ? releaseRoot : $"{releaseRoot}\n{n.ToString(CultureInfo.InvariantCulture)}"));
        return ("kiln" + Convert.ToHexStringLower(hash.AsSpan(0, 3)), $"10.{200 + hash[3] % 50}.{hash[4]}.0/24");
    }

    private (string Name, string Subnet) Choose()
    {
        if (_chosen is { } chosen)
        {
            return chosen;
        }
        // Recorded: ours unless its link now carries another store's alias (ours was removed and the name taken since).
        if (File.Exists(RecordPath) && File.ReadAllText(RecordPath).Split(' ', '\n') is [var recorded, var recordedSubnet, ..]
            && (_linkAlias(recorded) is null or "" || _linkAlias(recorded) == Owner))
        {
            return (_chosen = (recorded, recordedSubnet)).Value;
        }
        // A store released from before the choice was recorded: its unlabelled bridge is the first candidate.
        bool legacy = !File.Exists(RecordPath) && Directory.Exists(Path.Combine(_dataDir, "kiln-release"));
        for (int n = 0; n < 256; n++)
        {
            var (name, subnet) = Candidate(_releaseRoot, n);
            var alias = _linkAlias(name);
            bool free = alias is null || alias == Owner || (legacy && n == 0 && alias.Length == 0);
            if (free && !_subnetRoutedElsewhere(subnet, name))
            {
                Directory.CreateDirectory(_dataDir);
                var temp = RecordPath + ".tmp";
                File.WriteAllText(temp, $"{name} {subnet}\n");
                File.Move(temp, RecordPath, overwrite: true);
                return (_chosen = (name, subnet)).Value;
            }
        }
        throw ReleaseException.Network($"no free bridge name and subnet for the store at {_releaseRoot} (256 candidates tried)");
    }

    private static string? LinkAlias(string name)
    {
        var dir = $"/sys/class/net/{name}";
        if (!Directory.Exists(dir))
        {
            return null;
        }
        try
        {
            return File.ReadAllText(Path.Combine(dir, "ifalias")).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "";
        }
    }

    /// <summary>Whether the kernel's IPv4 routes (<c>/proc/net/route</c>: destination and mask in little-endian hex)
    /// send some of <paramref name="subnet"/> through an interface other than <paramref name="bridge"/>. The default
    /// route covers everything and is no owner.</summary>
    internal static bool SubnetRoutedElsewhere(string subnet, string bridge) =>
        File.Exists("/proc/net/route") && RoutedElsewhere(File.ReadAllLines("/proc/net/route"), subnet, bridge);

    internal static bool RoutedElsewhere(IEnumerable<string> routes, string subnet, string bridge)
    {
        var network = System.Net.IPAddress.Parse(subnet.Split('/')[0]).GetAddressBytes();
        uint ours = BitConverter.ToUInt32(network);
        const uint ourMask = 0x00FFFFFF; // a /24, little-endian as the kernel writes it
        foreach (var line in routes.Skip(1))
        {
            var f = line.Split('\t', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (f.Length < 8 || f[0] == bridge
                || !uint.TryParse(f[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var dest)
                || !uint.TryParse(f[7], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var mask) || mask == 0)
            {
                continue;
            }
            var common = mask & ourMask;
            if ((dest & common) == (ours & common))
            {
                return true;
            }
        }
        return false;
    }

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
        await LabelAsync(ct).ConfigureAwait(false);
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

    /// <summary>Marks the bridge the plugin made (or found) as this store's, by its alias, once.</summary>
    private async Task LabelAsync(CancellationToken ct)
    {
        if (_linkAlias(BridgeName) is not "")
        {
            return;
        }
        await IpAsync(["link", "set", "dev", BridgeName, "alias", Owner], ct).ConfigureAwait(false);
    }

    /// <summary>Removes the bridge once no target of the store uses it.</summary>
    public async Task RemoveBridgeAsync(CancellationToken ct)
    {
        // Another store's bridge of the same name is not ours to remove.
        if (_linkAlias(BridgeName) is not { } alias || (alias.Length > 0 && alias != Owner))
        {
            return;
        }
        await IpAsync(["link", "delete", BridgeName, "type", "bridge"], ct).ConfigureAwait(false);
    }

    private static async Task IpAsync(string[] args, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(HostPrograms.Resolve(HostPrograms.Ip)) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args)
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

