using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Kiln.Oci.Tests.Registry.Live;

/// <summary>Debian's docker-registry (Distribution 2.8) on 127.0.0.1 and a free port, with filesystem storage in a
/// temp directory; plain, TLS, htpasswd or token auth as configured. Disposing stops it and removes the directory.</summary>
public sealed class RegistryServer : IAsyncDisposable
{
    public const string Program = "/usr/bin/docker-registry";

    private readonly Process _process;
    private readonly StringBuilder _log = new();

    private RegistryServer(string root, int port, Process process)
    {
        Root = root;
        Port = port;
        _process = process;
    }

    /// <summary>A temp directory the server owns: its config, storage (<c>storage/</c>) and any certificates.</summary>
    public string Root { get; }

    public int Port { get; }

    public string Host => $"127.0.0.1:{Port}";

    public string StorageDirectory => Path.Combine(Root, "storage");

    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    public sealed record Settings
    {
        /// <summary>PEM certificate chain and key: serve TLS.</summary>
        public (string Certificate, string Key)? Tls { get; init; }

        /// <summary>With <see cref="Tls"/>: a CA bundle; the server then requires a client certificate it signed.</summary>
        public string? ClientCas { get; init; }

        /// <summary>An htpasswd file (bcrypt): Basic auth.</summary>
        public string? Htpasswd { get; init; }

        /// <summary>Token auth: realm URL, service, issuer and the PEM bundle of the token signer's certificate.</summary>
        public (string Realm, string Service, string Issuer, string RootBundle)? Token { get; init; }
    }

    public static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    public static async Task<RegistryServer> StartAsync(Settings? settings = null, string? root = null)
    {
        settings ??= new Settings();
        root ??= Directory.CreateTempSubdirectory("kiln-registry-").FullName;
        Directory.CreateDirectory(Path.Combine(root, "storage"));
        int port = FreePort();
        var config = new StringBuilder();
        config.AppendLine("version: 0.1");
        config.AppendLine("log:\n  level: info\n  accesslog:\n    disabled: true");
        config.AppendLine($"storage:\n  filesystem:\n    rootdirectory: {root}/storage\n  delete:\n    enabled: true");
        config.AppendLine($"http:\n  addr: 127.0.0.1:{port}\n  secret: kiln-test-secret");
        if (settings.Tls is { } tls)
        {
            config.AppendLine($"  tls:\n    certificate: {tls.Certificate}\n    key: {tls.Key}");
            if (settings.ClientCas is { } clientCas)
            {
                config.AppendLine($"    clientcas:\n      - {clientCas}");
            }
        }
        if (settings.Htpasswd is { } htpasswd)
        {
            config.AppendLine($"auth:\n  htpasswd:\n    realm: kiln-test\n    path: {htpasswd}");
        }
        else if (settings.Token is { } token)
        {
            config.AppendLine($"auth:\n  token:\n    realm: {token.Realm}\n    service: {token.Service}\n    issuer: {token.Issuer}\n    rootcertbundle: {token.RootBundle}");
        }
        string configPath = Path.Combine(root, "config.yml");
        await File.WriteAllTextAsync(configPath, config.ToString());
        var info = new ProcessStartInfo(Program) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        info.ArgumentList.Add("serve");
        info.ArgumentList.Add(configPath);
        var process = Process.Start(info)!;
        var server = new RegistryServer(root, port, process);
        process.ErrorDataReceived += (_, e) => server.Append(e.Data);
        process.OutputDataReceived += (_, e) => server.Append(e.Data);
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        try
        {
            await server.WaitListeningAsync();
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
        return server;
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (_log)
        {
            _log.AppendLine(line);
        }
    }

    private async Task WaitListeningAsync()
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"docker-registry exited with {_process.ExitCode}:\n{Log}");
            }
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(50);
            }
        }
        throw new TimeoutException($"docker-registry did not listen on {Host}:\n{Log}");
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill();
                await _process.WaitForExitAsync();
            }
        }
        finally
        {
            _process.Dispose();
            try
            {
                Directory.Delete(Root, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
