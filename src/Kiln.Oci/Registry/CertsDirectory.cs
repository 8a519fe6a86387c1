using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace Kiln.Oci.Registry;

/// <summary>The containers convention for per-registry CAs: every <c>*.crt</c> in <c>ROOT/HOST:PORT/</c> (or
/// <c>ROOT/HOST/</c>) is trusted for that registry, besides the system store.</summary>
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
