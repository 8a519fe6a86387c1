using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace Kiln.Oci.Tests.Registry.Live;

/// <summary>A test CA, a server certificate it signs for 127.0.0.1 and a client certificate, written as PEM files.</summary>
public sealed class TestPki
{
    public required string CaCertificate { get; init; }
    public required string ServerCertificate { get; init; }
    public required string ServerKey { get; init; }
    /// <summary>A client certificate the CA signs (client authentication), for registries that ask for one.</summary>
    public required string ClientCertificate { get; init; }
    public required string ClientKey { get; init; }

    public static TestPki Create(string dir)
    {
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=Kiln test CA", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        caRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(caRequest.PublicKey, false));
        var now = DateTimeOffset.UtcNow;
        using var ca = caRequest.CreateSelfSigned(now.AddDays(-1), now.AddDays(30));

        using var serverKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=127.0.0.1", serverKey, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddDnsName("localhost");
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        using var server = request.Create(ca, now.AddDays(-1), now.AddDays(30), RandomNumberGenerator.GetBytes(8));

        using var clientKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var clientRequest = new CertificateRequest("CN=kiln test client", clientKey, HashAlgorithmName.SHA256);
        clientRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        clientRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        clientRequest.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], false));
        clientRequest.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        using var client = clientRequest.Create(ca, now.AddDays(-1), now.AddDays(30), RandomNumberGenerator.GetBytes(8));

        Directory.CreateDirectory(dir);
        var pki = new TestPki
        {
            CaCertificate = Path.Combine(dir, "ca.crt"),
            ServerCertificate = Path.Combine(dir, "server.crt"),
            ServerKey = Path.Combine(dir, "server.key"),
            ClientCertificate = Path.Combine(dir, "client.cert"),
            ClientKey = Path.Combine(dir, "client.key"),
        };
        File.WriteAllText(pki.ClientCertificate, client.ExportCertificatePem() + "\n");
        File.WriteAllText(pki.ClientKey, clientKey.ExportPkcs8PrivateKeyPem() + "\n");
        File.WriteAllText(pki.CaCertificate, ca.ExportCertificatePem() + "\n");
        File.WriteAllText(pki.ServerCertificate, server.ExportCertificatePem() + "\n");
        File.WriteAllText(pki.ServerKey, serverKey.ExportPkcs8PrivateKeyPem() + "\n");
        return pki;
    }

    /// <summary>An htpasswd line with a bcrypt hash, as <c>htpasswd -B</c> writes.</summary>
    public static string Htpasswd(string user, string password) =>
        user + ":" + Org.BouncyCastle.Crypto.Generators.OpenBsdBCrypt.Generate("2y", password.ToCharArray(), RandomNumberGenerator.GetBytes(16), 5) + "\n";

    public static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public static string Base64Url(string text) => Base64Url(Encoding.UTF8.GetBytes(text));
}
