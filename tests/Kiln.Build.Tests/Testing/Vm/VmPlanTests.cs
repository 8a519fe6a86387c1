using System.Net;
using System.Net.Sockets;
using Kiln.Build.Testing.Spec;
using Kiln.Build.Testing.Vm;

namespace Kiln.Build.Tests.Testing.Vm;

public sealed class VmPlanTests
{
    [Fact]
    public void Commands_services_and_ports_become_guest_probes_and_http_checks_forward_their_ports()
    {
        Check[] checks =
        [
            VmTestSupport.Command("echo hi"),
            new ServiceCheck { Mark = VmTestSupport.Mark, Subject = "nginx.service", Enabled = true, Active = true },
            new ServiceCheck { Mark = VmTestSupport.Mark, Subject = "ssh", Active = false },
            new PortCheck { Mark = VmTestSupport.Mark, Subject = "tcp:8080", Protocol = "tcp", Port = 8080 },
            new HttpCheck { Mark = VmTestSupport.Mark, Subject = "http://127.0.0.1:8080/", Url = new Uri("http://127.0.0.1:8080/") },
            new HttpCheck { Mark = VmTestSupport.Mark, Subject = "http://localhost/", Url = new Uri("http://localhost/") },
            new HttpCheck { Mark = VmTestSupport.Mark, Subject = "http://127.0.0.1:8080/b", Url = new Uri("http://127.0.0.1:8080/b") },
        ];
        var plan = VmPlan.For(checks);
        Assert.Equal(["echo hi", "systemctl is-enabled 'nginx.service'", "systemctl is-active 'nginx.service'", "systemctl is-active 'ssh'"],
            plan.Probes.Take(4).Select(p => p.Command));
        Assert.Equal(Enumerable.Range(0, 5), plan.Probes.Select(p => p.Id));
        Assert.Equal([1, 2, 1, 1, 0, 0, 0], Enumerable.Range(0, checks.Length).Select(i => plan.ProbesOfCheck[i].Count));
        Assert.Equal([80, 8080], plan.HttpGuestPorts);
    }

    [Fact]
    public void Checks_of_the_image_files_are_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => VmPlan.For([new FileCheck { Mark = VmTestSupport.Mark, Subject = "/etc/passwd" }]));
        Assert.Contains("file /etc/passwd cannot run in the VM phase", e.Message);
        Assert.False(VmPhase.Supports(new PackageCheck { Mark = VmTestSupport.Mark, Subject = "bash" }));
    }

    [Fact]
    public void The_listening_probe_reads_proc_net_as_the_guest_would()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        Assert.Equal(0, VmTestSupport.Run("/bin/sh", "-c", VmPlan.ListeningProbe("tcp", port, expectListening: true)).ExitCode);
        Assert.Equal(0, VmTestSupport.Run("/bin/sh", "-c", VmPlan.ListeningProbe("tcp", port, expectListening: false)).ExitCode);
        listener.Stop();
        Assert.NotEqual(0, VmTestSupport.Run("/bin/sh", "-c", VmPlan.ListeningProbe("tcp", port, expectListening: false)).ExitCode);
    }

    [Fact]
    public void Results_are_compared_like_the_boot_phase_does()
    {
        var failures = new List<Kiln.Build.Execution.CheckFailure>();
        VmPhase.Outcome(VmTestSupport.Command("x", exit: 0, stdout: ["ok"]), [new GuestResult(0, 2, false, "no", "bad")], failures);
        Assert.Equal(["exit-status", "stdout"], failures.Select(f => f.Matcher));
        failures.Clear();
        VmPhase.Outcome(new ServiceCheck { Mark = VmTestSupport.Mark, Subject = "www", Enabled = true, Active = true },
            [new GuestResult(0, 0, false, "enabled\n", ""), new GuestResult(1, 3, false, "inactive\n", "")], failures);
        Assert.Equal(new Kiln.Build.Execution.CheckFailure("active", "true", "false (systemctl is-active: \"inactive\")"), Assert.Single(failures));
    }
}
