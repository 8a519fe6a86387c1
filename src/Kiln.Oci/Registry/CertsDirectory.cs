using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace Kiln.Oci.Registry;

/// <summary>The containers convention for per-registry TLS (containers-certs.d(5)): every <c>*.crt</c> in
/// <c>ROOT/HOST:PORT/</c> is a CA trusted for that registry, besides the system store, and every <c>NAME.cert</c>
/// with its <c>NAME.key</c> is a client certificate presented to it.</summary>
public static class CertsDirectory
{
    public static X509Certificate2Collection Load(string? root, string registry)
    {
        var result = new X509Certificate2Collection();
        if (root is null)
        {
            return result;
        }
        string dir = Path.Combine(root, registry);
        if (!Directory.Exists(dir))
        {
            return result;
        }
        foreach (var file in Directory.EnumerateFiles(dir, "*.crt").Order(StringComparer.Ordinal))
        {
            try
            {
                result.ImportFromPemFile(file);
            }
            catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or IOException)
            {
                throw RegistryException.BadFile(file, "not a PEM certificate file: " + e.Message, e);
            }
        }
        return result;
    }

    /// <summary>The client certificates of <c>ROOT/REGISTRY/</c>: each <c>NAME.cert</c> (PEM, possibly with its chain)
    /// with the private key of <c>NAME.key</c> beside it. A certificate without its key is an error: presenting
    /// nothing would only show up later as the registry's refusal of the handshake.</summary>
    public static X509Certificate2Collection LoadClientCertificates(string? root, string registry)
    {
        var result = new X509Certificate2Collection();
        string? dir = root is null ? null : Path.Combine(root, registry);
        if (dir is null || !Directory.Exists(dir))
        {
            return result;
        }
        foreach (var file in Directory.EnumerateFiles(dir, "*.cert").Order(StringComparer.Ordinal))
        {
            string key = Path.ChangeExtension(file, ".key");
            if (!File.Exists(key))
            {
                throw RegistryException.BadFile(file, $"a client certificate without its key (expected {Path.GetFileName(key)} beside it)");
            }
            try
            {
                result.Add(X509Certificate2.CreateFromPemFile(file, key));
            }
            catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or IOException or ArgumentException)
            {
                throw RegistryException.BadFile(file, $"not a PEM certificate whose key is {Path.GetFileName(key)}: " + e.Message, e);
            }
        }
        foreach (var key in Directory.EnumerateFiles(dir, "*.key").Order(StringComparer.Ordinal))
        {
            if (!File.Exists(Path.ChangeExtension(key, ".cert")))
            {
                throw RegistryException.BadFile(key, $"a client key without its certificate (expected {Path.GetFileName(Path.ChangeExtension(key, ".cert"))} beside it)");
            }
        }
        return result;
    }

    /// <summary>A validation callback that accepts what the system store accepts, and else a chain that ends in one
    /// of <paramref name="roots"/>. A name mismatch is never forgiven.</summary>
    public static RemoteCertificateValidationCallback Validator(X509Certificate2Collection roots) =>
        (_, certificate, _, errors) =>
        {
            if (errors == SslPolicyErrors.None)
            {
                return true;
            }
            if (errors != SslPolicyErrors.RemoteCertificateChainErrors || roots.Count == 0 || certificate is null)
            {
                return false;
            }
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.AddRange(roots);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            using var cert = new X509Certificate2(certificate);
            return chain.Build(cert);
        };
}
