using System.Net;
using Kiln.Build.Release;

namespace Kiln.Build.Tests.Release;

public sealed class BalancerTests
{
    [Fact]
    public void Config_has_the_runtime_socket_the_listener_and_each_server()
    {
        var balancer = new Balancer("/store/kiln/release/web", "web", IPEndPoint.Parse("127.0.0.1:9080"));

        var config = balancer.Config([new BalancerServer("s1", "10.1.2.3:8080", 100, true), new BalancerServer("s2", "10.1.2.4:8080", 0, false)]);

        Assert.Contains("master-worker", config);
        Assert.Contains("stats socket /store/kiln/release/web/admin.sock mode 600 level admin expose-fd listeners", config);
        Assert.Contains("bind 127.0.0.1:9080", config);
        Assert.Contains("server s1 10.1.2.3:8080 weight 100 check\n", config);
        Assert.Contains("server s2 10.1.2.4:8080 weight 0 check disabled\n", config);
    }

    [Fact]
    public void Stats_give_each_server_of_the_backend_its_requests_and_failures()
    {
        // The columns HAProxy 2.6 prints, shortened to those read and a few around them, in its order.
        const string csv = """
            # pxname,svname,qcur,scur,stot,econ,eresp,status,weight,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,
            web,FRONTEND,,3,90,,,OPEN,,0,80,0,0,10,0,
            serving,s1,0,1,60,0,0,UP,100,0,60,0,0,0,0,
            serving,s2,0,2,30,1,2,UP,10,0,20,0,0,7,0,
            serving,BACKEND,0,3,90,1,2,UP,110,0,80,0,0,7,0,

            """;

        var stats = Balancer.ParseStats(csv);

        Assert.Equal(["s1", "s2"], stats.Select(s => s.Name));
        Assert.Equal((60L, 0L, 100), (stats[0].Requests, stats[0].Failed, stats[0].Weight));
        Assert.Equal((30L, 10L, 2L), (stats[1].Requests, stats[1].Failed, stats[1].Sessions));
    }

    [Fact]
    public void An_answer_that_is_no_csv_is_an_error()
    {
        Assert.Throws<ReleaseException>(() => Balancer.ParseStats("Unknown command\n"));
    }
}
