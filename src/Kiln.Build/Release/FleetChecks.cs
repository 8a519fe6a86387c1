using System.Net;
using System.Net.Sockets;
using Kiln.Build.Definition;
using Kiln.Build.Testing.Spec;

namespace Kiln.Build.Release;

/// <summary>The checks a fleet's servers get: the spec's boot-phase port and http checks on the target's port,
/// pointed at each server's address (commands and services need the instance's namespaces, which a fleet server
/// does not share with Kiln).</summary>
internal static class FleetChecks
{
    public static async Task CheckAsync(string definitionPath, ReleaseTarget target, IReadOnlyList<ServerRecord> servers, CancellationToken ct)
    {
        var file = DefinitionLoader.Load(definitionPath);
        var image = file.Images.First(i => i.Name == target.Image);
        var checks = image.Test is { } test ? TestSpecLoader.Load(test, image.Boot).In(TestPhase.Boot).ToList() : [];
        var problems = new List<string>();
        foreach (var server in servers)
        {
            var ep = IPEndPoint.Parse(server.Address!);
            // Reachable at all, whatever the spec says.
            if (await ConnectProblemAsync(ep, ct).ConfigureAwait(false) is { } refused)
            {
                problems.Add($"{server.Address}: {refused}");
                continue;
            }
            foreach (var check in checks)
            {
                switch (check)
                {
                    case PortCheck { Protocol: "tcp", Listening: true } p when p.Port == target.Port:
                        break; // connected above
                    case HttpCheck h when h.Url.Port == target.Port:
                        var url = new UriBuilder(h.Url) { Host = ep.Address.ToString(), Port = ep.Port }.Uri;
                        try
                        {
                            using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false }) { Timeout = h.Timeout };
                            using var response = await client.GetAsync(url, ct).ConfigureAwait(false);
                            var body = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
                            if ((int)response.StatusCode != h.Status)
                            {
                                problems.Add($"{server.Address}: {check.Name}: status {(int)response.StatusCode}, expected {h.Status}");
                            }
                            problems.AddRange(h.Body.Where(b => !body.Contains(b, StringComparison.Ordinal)).Select(b => $"{server.Address}: {check.Name}: body lacks \"{b}\""));
                        }
                        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
                        {
                            problems.Add($"{server.Address}: {check.Name}: no response: {e.Message}");
                        }
                        break;
                }
            }
        }
        if (problems.Count > 0)
        {
            throw ReleaseException.CheckFailed(target.Name, "fleet", string.Join("; ", problems));
        }
    }

    private static async Task<string?> ConnectProblemAsync(IPEndPoint ep, CancellationToken ct)
    {
        using var socket = new Socket(ep.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(TimeSpan.FromSeconds(5));
        try
        {
            await socket.ConnectAsync(ep, limit.Token).ConfigureAwait(false);
            return null;
        }
        catch (SocketException e)
        {
            return "cannot connect: " + e.Message;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return "cannot connect within 5 s";
        }
    }
}
