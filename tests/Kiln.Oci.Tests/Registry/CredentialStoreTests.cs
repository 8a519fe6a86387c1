using System.Text;
using Kiln.Oci.Registry;

namespace Kiln.Oci.Tests.Registry;

public sealed class CredentialStoreTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kiln-auth-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private string Write(string name, string json)
    {
        string path = Path.Combine(_dir, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, json);
        return path;
    }

    private static string Auths(params (string Key, string Auth)[] entries) =>
        "{\"auths\":{" + string.Join(",", entries.Select(e => $"\"{e.Key}\":{{\"auth\":\"{e.Auth}\"}}")) + "}}";

    private static string Auth(string user, string password) => Convert.ToBase64String(Encoding.UTF8.GetBytes(user + ":" + password));

    [Fact]
    public async Task Reads_auths_in_file_order_and_the_most_specific_key_first()
    {
        var first = Write("a.json", Auths(("reg.example/team", Auth("team", "p1"))));
        var second = Write("b.json", Auths(("https://reg.example/v1/", Auth("any", "p:2")), ("other.example", Auth("o", "p3"))));
        var store = new CredentialStore([first, Path.Combine(_dir, "missing.json"), second], first);
        Assert.Equal("team", (await store.GetAsync("reg.example", "team/web"))!.Username);
        var any = (await store.GetAsync("reg.example", "web"))!;
        Assert.Equal("any", any.Username);
        Assert.Equal("p:2", any.Secret);
        Assert.Equal("o", (await store.GetAsync("other.example"))!.Username);
        Assert.Null(await store.GetAsync("unknown.example"));
    }

    [Fact]
    public async Task Runs_the_credential_helper_the_file_names()
    {
        string helper = Write("docker-credential-fake", "#!/bin/sh\nread host\nif [ \"$host\" = reg.example ]; then echo '{\"ServerURL\":\"reg.example\",\"Username\":\"helped\",\"Secret\":\"from-helper\"}'; else echo 'credentials not found in native keychain'; exit 1; fi\n");
        File.SetUnixFileMode(helper, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var config = Write("config.json", """{"credHelpers":{"reg.example":"fake"},"credsStore":"fake"}""");
        var store = new CredentialStore([config], config, name => Path.Combine(_dir, "docker-credential-" + name));
        var c = (await store.GetAsync("reg.example"))!;
        Assert.Equal("helped", c.Username);
        Assert.Equal("from-helper", c.Secret);
        Assert.Null(await store.GetAsync("other.example"));
    }

    [Fact]
    public async Task Logout_erases_from_the_credential_helper_configured_for_the_registry()
    {
        // A helper that keeps one file per registry, as docker-credential-pass keeps one entry per server.
        string kept = Path.Combine(_dir, "kept");
        Directory.CreateDirectory(kept);
        File.WriteAllText(Path.Combine(kept, "reg.example"), """{"Username":"helped","Secret":"from-helper"}""");
        string helper = Write("docker-credential-files", $$"""
            #!/bin/sh
            read host
            f={{kept}}/$host
            case "$1" in
              get) [ -f "$f" ] && cat "$f" && exit 0 ;;
              erase) [ -f "$f" ] && rm "$f" && exit 0 ;;
              *) exit 3 ;;
            esac
            echo 'credentials not found in native keychain'; exit 1

            """);
        File.SetUnixFileMode(helper, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var auth = Write("auth.json", Auths(("plain.example", Auth("p", "pp"))));
        var docker = Write("config.json", """{"credHelpers":{"reg.example":"files"}}""");
        var store = new CredentialStore([auth, docker], auth, name => Path.Combine(_dir, "docker-credential-" + name));
        Assert.Equal("helped", (await store.GetAsync("reg.example"))!.Username);

        Assert.Equal(["credential helper files"], await store.LogoutAsync("reg.example"));
        Assert.False(File.Exists(Path.Combine(kept, "reg.example")));
        Assert.Null(await store.GetAsync("reg.example"));
        Assert.Empty(await store.LogoutAsync("reg.example"));
        Assert.Equal([auth], await store.LogoutAsync("plain.example"));
    }

    [Fact]
    public async Task An_identitytoken_is_read_as_a_refresh_token_not_a_password()
    {
        var auth = Write("auth.json", """{"auths":{"reg.example":{"auth":"","identitytoken":"refresh-abc"}}}""");
        var c = (await new CredentialStore([auth], auth).GetAsync("reg.example"))!;
        Assert.Equal("refresh-abc", c.IdentityToken);
        Assert.Equal("", c.Secret);
    }

    [Fact]
    public async Task Store_and_remove_keep_other_entries_and_write_mode_0600()
    {
        var path = Write("containers/auth.json", Auths(("keep.example", Auth("k", "kp")))[..^1] + ",\"credHelpers\":{\"x.example\":\"y\"}}");
        var store = new CredentialStore([path], path);
        store.Store("reg.example:5000", new RegistryCredential("u", "secret-value"));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.Equal("secret-value", (await store.GetAsync("reg.example:5000"))!.Secret);
        Assert.Equal("k", (await store.GetAsync("keep.example"))!.Username);
        Assert.Contains("credHelpers", File.ReadAllText(path));
        Assert.True(store.Remove("reg.example:5000"));
        Assert.False(store.Remove("reg.example:5000"));
        Assert.Null(await store.GetAsync("reg.example:5000"));
        Assert.Equal("k", (await store.GetAsync("keep.example"))!.Username);
    }

    [Fact]
    public void Writes_a_new_file_in_a_new_directory()
    {
        string path = Path.Combine(_dir, "run", "containers", "auth.json");
        new CredentialStore([path], path).Store("reg.example", new RegistryCredential("u", "p"));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(path)!));
    }

    [Fact]
    public async Task A_broken_file_is_named_without_its_content()
    {
        var path = Write("auth.json", """{"auths":{"reg.example":{"auth":"not base64 TOPSECRET"}}}""");
        var e = await Assert.ThrowsAsync<RegistryException>(() => new CredentialStore([path], path).GetAsync("reg.example"));
        Assert.Contains(path, e.Message);
        Assert.DoesNotContain("TOPSECRET", e.Message);
        var bad = Write("bad.json", "{\"auths\": TOPSECRET");
        var e2 = await Assert.ThrowsAsync<RegistryException>(() => new CredentialStore([bad], bad).GetAsync("reg.example"));
        Assert.Contains(bad, e2.Message);
        Assert.DoesNotContain("TOPSECRET", e2.Message);
    }

    [Fact]
    public void The_environment_orders_the_files_as_containers_tools_do()
    {
        var env = new Dictionary<string, string> { ["HOME"] = "/home/u", ["XDG_RUNTIME_DIR"] = "/run/user/1" };
        var store = CredentialStore.FromEnvironment(n => env.GetValueOrDefault(n));
        Assert.Equal(["/run/user/1/containers/auth.json", "/home/u/.config/containers/auth.json", "/home/u/.docker/config.json"], store.Files);
        Assert.Equal("/run/user/1/containers/auth.json", store.WriteFile);
        env["REGISTRY_AUTH_FILE"] = "/etc/kiln/auth.json";
        Assert.Equal("/etc/kiln/auth.json", CredentialStore.FromEnvironment(n => env.GetValueOrDefault(n)).WriteFile);
    }

    [Fact]
    public void A_credential_never_shows_its_secret()
    {
        var c = new RegistryCredential("user", "hunter2") { IdentityToken = "tok-123" };
        Assert.DoesNotContain("hunter2", c.ToString());
        Assert.DoesNotContain("tok-123", c.ToString());
        Assert.DoesNotContain("user", c.ToString());
    }
}
