using Kiln.Oci.Registry;

namespace Kiln.Oci.Tests.Registry.Live;

[Trait("Tier", "Slow")] // starts docker-registry and a token server
public sealed class AuthRegistryTests
{
    private static RegistryClientOptions Options(string? certs, string user, string password) => new()
    {
        CertsDirectory = certs,
        Credentials = (_, _, _) => Task.FromResult<RegistryCredential?>(new RegistryCredential(user, password)),
        MaxAttempts = 2,
    };

    private static async Task<(RegistryServer Server, string Certs)> StartTlsBasicAsync(string root)
    {
        var pki = TestPki.Create(Path.Combine(root, "pki"));
        string htpasswd = Path.Combine(root, "htpasswd");
        await File.WriteAllTextAsync(htpasswd, TestPki.Htpasswd("alice", "s3cret-pass"));
        var server = await RegistryServer.StartAsync(new RegistryServer.Settings { Tls = (pki.ServerCertificate, pki.ServerKey), Htpasswd = htpasswd }, root);
        string certs = Path.Combine(Path.GetTempPath(), "kiln-certs-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path.Combine(certs, server.Host));
        File.Copy(pki.CaCertificate, Path.Combine(certs, server.Host, "ca.crt"));
        return (server, certs);
    }

    [Fact]
    public async Task Pushes_and_pulls_over_tls_with_a_ca_from_certs_d_and_basic_auth()
    {
        var (server, certs) = await StartTlsBasicAsync(Directory.CreateTempSubdirectory("kiln-registry-").FullName);
        await using (server)
        {
            try
            {
                using var client = new RegistryClient(server.Host, Options(certs, "alice", "s3cret-pass"));
                var image = TestImage.Create(11, 1000, 300_000);
                await PlainRegistryTests.PushAsync(client, "secure/web", image, "v1");
                await PlainRegistryTests.PullAndCompareAsync(client, "secure/web", image, "v1");
            }
            finally
            {
                Directory.Delete(certs, true);
            }
        }
    }

    [Fact]
    public async Task Refuses_the_registry_certificate_without_its_ca_and_wrong_credentials_with_a_clear_message()
    {
        var (server, certs) = await StartTlsBasicAsync(Directory.CreateTempSubdirectory("kiln-registry-").FullName);
        await using (server)
        {
            try
            {
                using (var untrusted = new RegistryClient(server.Host, Options(null, "alice", "s3cret-pass") with { MaxAttempts = 1 }))
                {
                    var tls = await Assert.ThrowsAsync<RegistryException>(() => untrusted.PingAsync());
                    Assert.Contains(server.Host, tls.Message);
                }
                using var wrong = new RegistryClient(server.Host, Options(certs, "alice", "wrong-password-123"));
                var e = await Assert.ThrowsAsync<RegistryException>(() => wrong.PingAsync());
                Assert.Equal(RegistryErrorKind.AuthenticationFailed, e.Kind);
                Assert.Contains("authentication failed", e.Message);
                Assert.DoesNotContain("wrong-password-123", e.ToString());
            }
            finally
            {
                Directory.Delete(certs, true);
            }
        }
    }

    [Fact]
    public async Task Presents_the_client_certificate_of_certs_d_to_a_registry_that_requires_one()
    {
        string root = Directory.CreateTempSubdirectory("kiln-registry-").FullName;
        var pki = TestPki.Create(Path.Combine(root, "pki"));
        await using var server = await RegistryServer.StartAsync(new RegistryServer.Settings
        {
            Tls = (pki.ServerCertificate, pki.ServerKey),
            ClientCas = pki.CaCertificate,
        }, root);
        string certs = Directory.CreateTempSubdirectory("kiln-certs-").FullName;
        try
        {
            string dir = Path.Combine(certs, server.Host);
            Directory.CreateDirectory(dir);
            File.Copy(pki.CaCertificate, Path.Combine(dir, "ca.crt"));
            var options = new RegistryClientOptions { CertsDirectory = certs, MaxAttempts = 1 };
            using (var without = new RegistryClient(server.Host, options))
            {
                var refused = await Assert.ThrowsAsync<RegistryException>(() => without.PingAsync());
                Assert.Contains(server.Host, refused.Message);
            }

            // A certificate without its key is named, not silently left out.
            File.Copy(pki.ClientCertificate, Path.Combine(dir, "lonely.cert"));
            var unpaired = Assert.Throws<RegistryException>(() => new RegistryClient(server.Host, options));
            Assert.Contains("lonely.cert", unpaired.Message);
            File.Delete(Path.Combine(dir, "lonely.cert"));

            File.Copy(pki.ClientCertificate, Path.Combine(dir, "client.cert"));
            File.Copy(pki.ClientKey, Path.Combine(dir, "client.key"));
            using var with = new RegistryClient(server.Host, options);
            var image = TestImage.Create(13, 2000, 40_000);
            await PlainRegistryTests.PushAsync(with, "mtls/web", image, "v1");
            await PlainRegistryTests.PullAndCompareAsync(with, "mtls/web", image, "v1");
        }
        finally
        {
            Directory.Delete(certs, true);
        }
    }

    [Fact]
    public async Task Login_checks_the_credentials_then_writes_them_to_the_auth_file()
    {
        var (server, certs) = await StartTlsBasicAsync(Directory.CreateTempSubdirectory("kiln-registry-").FullName);
        string dir = Directory.CreateTempSubdirectory("kiln-auth-").FullName;
        await using (server)
        {
            try
            {
                var store = new CredentialStore([Path.Combine(dir, "auth.json")], Path.Combine(dir, "auth.json"));
                var options = new RegistryClientOptions { CertsDirectory = certs, MaxAttempts = 1 };
                var e = await Assert.ThrowsAsync<RegistryException>(() => store.LoginAsync(server.Host, new RegistryCredential("alice", "nope-nope"), options));
                Assert.Equal(RegistryErrorKind.AuthenticationFailed, e.Kind);
                Assert.False(File.Exists(store.WriteFile));
                await store.LoginAsync(server.Host, new RegistryCredential("alice", "s3cret-pass"), options);
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(store.WriteFile));
                using var client = new RegistryClient(server.Host, options with { Credentials = (r, repo, ct) => store.GetAsync(r, repo, ct) });
                await client.PingAsync();
                Assert.Equal([store.WriteFile], await store.LogoutAsync(server.Host));
                Assert.Null(await store.GetAsync(server.Host));
            }
            finally
            {
                Directory.Delete(certs, true);
                Directory.Delete(dir, true);
            }
        }
    }

    [Fact]
    public async Task Pushes_and_pulls_with_bearer_tokens_scoped_per_repository()
    {
        string root = Directory.CreateTempSubdirectory("kiln-registry-").FullName;
        await using var tokens = new TokenServer(root, "bob", "token-pass", refreshToken: "refresh-7f3a9c");
        await using var server = await RegistryServer.StartAsync(new RegistryServer.Settings
        {
            Token = (tokens.Realm, TokenServer.Service, TokenServer.Issuer, tokens.RootBundle),
        }, root);
        using var client = new RegistryClient(server.Host, Options(null, "bob", "token-pass") with { Insecure = true });
        var image = TestImage.Create(12, 5000, 70_000);
        await PlainRegistryTests.PushAsync(client, "team/app", image, "v1");
        await PlainRegistryTests.PullAndCompareAsync(client, "team/app", image, "v1");
        Assert.Contains("repository:team/app:pull,push", tokens.Requests);
        Assert.Contains("repository:team/app:pull", tokens.Requests);
        // Tokens are cached per scope: not one per request.
        Assert.True(tokens.Issued <= 4, $"{tokens.Issued} tokens issued: {string.Join(" | ", tokens.Requests)}");

        using var wrong = new RegistryClient(server.Host, Options(null, "bob", "bad-token-pass") with { Insecure = true });
        var e = await Assert.ThrowsAsync<RegistryException>(() => wrong.ResolveManifestAsync("team/app", "v1"));
        Assert.Equal(RegistryErrorKind.AuthenticationFailed, e.Kind);
        Assert.Contains("authentication failed", e.Message);
        Assert.DoesNotContain("bad-token-pass", e.ToString());

        // A docker identity token is exchanged for access tokens by OAuth2's refresh_token grant, never sent as Basic.
        RegistryCredential Identity(string token) => new("<token>", "") { IdentityToken = token };
        using var identity = new RegistryClient(server.Host, Options(null, "x", "y") with
        {
            Insecure = true,
            Credentials = (_, _, _) => Task.FromResult<RegistryCredential?>(Identity("refresh-7f3a9c")),
        });
        Assert.Equal(image.ManifestDigest, (await identity.ResolveManifestAsync("team/app", "v1"))!.Digest);
        Assert.Equal(1, tokens.IssuedForRefreshToken);
        using var stale = new RegistryClient(server.Host, Options(null, "x", "y") with
        {
            Insecure = true,
            Credentials = (_, _, _) => Task.FromResult<RegistryCredential?>(Identity("refresh-revoked")),
        });
        var refused = await Assert.ThrowsAsync<RegistryException>(() => stale.ResolveManifestAsync("team/app", "v1"));
        Assert.Equal(RegistryErrorKind.AuthenticationFailed, refused.Kind);
        Assert.Contains("identity token", refused.Message);
        Assert.DoesNotContain("refresh-revoked", refused.ToString());
    }
}
