using System.Globalization;
using Kiln.Build.Testing.Spec;

namespace Kiln.Build.Testing.Vm;

/// <summary>How a spec's checks run in the VM: command, service and port checks become probes the guest runs
/// (by the check's index); http checks run from the host through a forwarded port.</summary>
internal sealed record VmPlan(IReadOnlyList<GuestProbe> Probes, IReadOnlyDictionary<int, IReadOnlyList<GuestProbe>> ProbesOfCheck,
    IReadOnlyList<int> HttpGuestPorts)
{
    private static readonly TimeSpan SystemctlTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan PortTimeout = TimeSpan.FromSeconds(10);

    public static VmPlan For(IReadOnlyList<Check> checks)
    {
        var probes = new List<GuestProbe>();
        var ofCheck = new Dictionary<int, IReadOnlyList<GuestProbe>>();
        var ports = new SortedSet<int>();
        for (int i = 0; i < checks.Count; i++)
        {
            var mine = new List<GuestProbe>();
            void Add(string command, TimeSpan timeout)
            {
                var p = new GuestProbe(probes.Count, command, timeout);
                probes.Add(p);
                mine.Add(p);
            }
            switch (checks[i])
            {
                case CommandCheck c:
                    Add(c.Subject, c.Timeout);
                    break;
                case ServiceCheck s:
                    // Unit names are validated by the spec parser; quoted all the same.
                    if (s.Enabled is not null)
                    {
                        Add($"systemctl is-enabled {GuestScript.Quote(s.Subject)}", SystemctlTimeout);
                    }
                    if (s.Active is not null)
                    {
                        Add($"systemctl is-active {GuestScript.Quote(s.Subject)}", SystemctlTimeout);
                    }
                    break;
                case PortCheck p:
                    Add(ListeningProbe(p.Protocol, p.Port, p.Listening), PortTimeout);
                    break;
                case HttpCheck h:
                    ports.Add(h.Url.Port);
                    break;
                default:
                    throw new ArgumentException($"{checks[i].Name} cannot run in the VM phase (it runs command, service, port and http checks)");
            }
            ofCheck[i] = mine;
        }
        return new VmPlan(probes, ofCheck, [.. ports]);
    }

    /// <summary>A shell command that exits 0 when a socket listens on the port (TCP state LISTEN, UDP bound) in
    /// /proc/net, without ss or netstat, which small images lack. Expecting a listener, it waits up to 5 s for one.</summary>
    public static string ListeningProbe(string protocol, int port, bool expectListening)
    {
        var (files, state) = protocol == "udp" ? ("udp", "07") : ("tcp", "0A");
        var hex = port.ToString("X4", CultureInfo.InvariantCulture);
        var once = $"f=/proc/net/{files}; [ -e /proc/net/{files}6 ] && f=\"$f /proc/net/{files}6\"; "
            + $"listening() {{ awk -v p={hex} -v s={state} 'FNR > 1 {{ n = split($2, a, \":\"); if (a[n] == p && $4 == s) found = 1 }} END {{ exit !found }}' $f; }}; ";
        return expectListening
            ? once + "i=0; until listening; do i=$((i + 1)); [ $i -ge 25 ] && exit 1; sleep 0.2; done"
            : once + "listening";
    }
}
