using System.Net;
using Kiln.Build.Local;

namespace Kiln.Build.Tests.Local;

public sealed class PublishedPortTests
{
    [Theory]
    [InlineData("18080:8080", "127.0.0.1", 18080, 8080)]
    [InlineData("0.0.0.0:80:8080", "0.0.0.0", 80, 8080)]
    [InlineData("[::1]:8443:443", "::1", 8443, 443)]
    public void Reads_host_address_host_port_and_port(string text, string address, int hostPort, int port)
    {
        var p = PublishedPort.Parse(text);
        Assert.Equal(IPAddress.Parse(address), p.HostAddress);
        Assert.Equal(hostPort, p.HostPort);
        Assert.Equal(port, p.Port);
    }

    [Theory]
    [InlineData("8080", "HOST_PORT:PORT")]
    [InlineData("x:8080", "'x' is not a port number")]
    [InlineData("18080:70000", "'70000' is not a port number")]
    [InlineData("18080:0", "'0' is not a port number")]
    [InlineData("localhost:1:2", "'localhost' is not an IP address")]
    [InlineData("::1:1:2", "is not an IP address")]
    public void Rejects_what_is_not_a_published_port_naming_the_value(string text, string why)
    {
        var e = Assert.Throws<LocalException>(() => PublishedPort.Parse(text));
        Assert.True(e.IsBadInput);
        Assert.Contains($"-p {text}: ", e.Message);
        Assert.Contains(why, e.Message);
    }
}
