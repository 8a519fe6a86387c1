using System.Globalization;
using System.Net;

namespace Kiln.Build.Local;

/// <summary>A port of an instance published on the host: connections to <see cref="HostEndPoint"/> reach
/// <see cref="Port"/> on the instance's loopback.</summary>
public sealed record PublishedPort(IPAddress HostAddress, int HostPort, int Port)
{
    public IPEndPoint HostEndPoint => new(HostAddress, HostPort);

    /// <summary>Reads <c>[HOST_ADDR:]HOST_PORT:PORT</c> (an IPv6 address in brackets); the host address defaults to
    /// 127.0.0.1, so nothing is reachable from elsewhere unless asked for.</summary>
    public static PublishedPort Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        int last = text.LastIndexOf(':');
        int hostPortStart = last < 0 ? -1 : text.LastIndexOf(':', last - 1);
        if (last < 0)
        {
            throw Bad(text, "give HOST_PORT:PORT or HOST_ADDR:HOST_PORT:PORT");
        }
        var address = IPAddress.Loopback;
        string hostPort;
        if (hostPortStart < 0)
        {
            hostPort = text[..last];
        }
        else
        {
            var host = text[..hostPortStart];
            hostPort = text[(hostPortStart + 1)..last];
            if (host.Length == 0 || !IPAddress.TryParse(host.Trim('[', ']'), out address!) || (host.Contains(':', StringComparison.Ordinal) && !host.StartsWith('[')))
            {
                throw Bad(text, $"'{host}' is not an IP address (an IPv6 address goes in brackets)");
            }
        }
        return new PublishedPort(address, PortNumber(text, hostPort), PortNumber(text, text[(last + 1)..]));
    }

    private static int PortNumber(string text, string part) =>
        int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is > 0 and < 65536
            ? n
            : throw Bad(text, $"'{part}' is not a port number (1-65535)");

    private static LocalException Bad(string text, string why) => LocalException.BadInput($"-p {text}: {why}");

    public override string ToString() => $"{HostEndPoint} -> {Port}";
}
