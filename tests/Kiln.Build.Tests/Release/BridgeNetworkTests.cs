using Kiln.Build.Release;
using Kiln.Build.Tests.Layers;

namespace Kiln.Build.Tests.Release;

public sealed class BridgeNetworkTests : IDisposable
{
    private readonly TempRoot _root = new();
    private readonly Dictionary<string, string> _links = [];
    private readonly HashSet<string> _routed = [];

    public void Dispose() => _root.Dispose();

    private string Release => _root.Dir("release");

    private BridgeNetwork Network() =>
        new(Release, name => _links.GetValueOrDefault(name), (subnet, bridge) => _routed.Contains(subnet));

    [Fact]
    public void A_name_or_subnet_another_store_holds_is_passed_over_and_the_choice_is_kept()
    {
        var first = BridgeNetwork.Candidate(Release, 0);
        var second = BridgeNetwork.Candidate(Release, 1);
        var third = BridgeNetwork.Candidate(Release, 2);
        _links[first.Name] = "kiln /another/store/kiln/release"; // the same hash prefix: another store's bridge
        _routed.Add(second.Subnet);                               // a LAN on another interface

        var network = Network();
        Assert.Equal(third, (network.BridgeName, network.Subnet));

        // Recorded: the next kiln takes the same bridge even when the earlier candidates have become free.
        _links.Clear();
        _routed.Clear();
        _links[third.Name] = network.Owner;
        Assert.Equal(third.Name, Network().BridgeName);

        // Ours was removed and another store took the name since: a new choice.
        _links[third.Name] = "kiln /yet/another/kiln/release";
        Assert.Equal(first.Name, Network().BridgeName);
    }

    [Fact]
    public void A_store_that_released_before_the_choice_was_recorded_keeps_its_unlabelled_bridge()
    {
        Directory.CreateDirectory(Path.Combine(Release, "cni", "kiln-release"));
        var first = BridgeNetwork.Candidate(Release, 0);
        _links[first.Name] = "";
        Assert.Equal(first.Name, Network().BridgeName);
    }

    [Fact]
    public void Routes_of_other_interfaces_that_overlap_the_subnet_are_found()
    {
        string[] routes =
        [
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT",
            "eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0", // default: no owner
            "eth0\t0000C80A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0", // 10.200.0.0/16
            "kilnabc\t00E1CB0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0", // 10.203.225.0/24, the bridge's own
        ];
        Assert.True(BridgeNetwork.RoutedElsewhere(routes, "10.200.7.0/24", "kilnabc"));
        Assert.False(BridgeNetwork.RoutedElsewhere(routes, "10.203.225.0/24", "kilnabc"));
        Assert.False(BridgeNetwork.RoutedElsewhere(routes, "10.201.7.0/24", "kilnabc"));
    }
}
