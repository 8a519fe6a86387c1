using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Kiln.Oci.Tests.Registry.Live;
using static Kiln.Cli.Tests.ForeignImage;

namespace Kiln.Cli.Tests;

/// <summary><c>kiln push</c>, <c>pull</c>, <c>login</c>/<c>logout</c> and <c>from: HOST/REPO</c> against Debian's
/// docker-registry on 127.0.0.1, with skopeo as the other side: every digest survives each way.</summary>
[Trait("Tier", "Slow")] // starts docker-registry
public sealed class RegistryTests : IAsyncLifetime
{
    private readonly TempDir _store = new("kiln-store");
    private readonly TempDir _other = new("kiln-store-empty");
    private readonly TempDir _work = new("kiln-registry-work");
    private RegistryServer _registry = null!;

    public async Task InitializeAsync() => _registry = await RegistryServer.StartAsync();

    public async Task DisposeAsync()
    {
        await _registry.DisposeAsync();
        _store.Dispose();
        _other.Dispose();
        _work.Dispose();
    }

    private string AuthFile => _work.Sub("auth.json");

    /// <summary>kiln against <paramref name="store"/>, with its own auth file (never the user's).</summary>
    private KilnProcess.Result Kiln(string store, params string[] args)
    {
        var psi = KilnProcess.StartInfo(store, args);
        psi.Environment["REGISTRY_AUTH_FILE"] = AuthFile;
        return KilnProcess.Run(psi, TimeSpan.FromMinutes(5));
    }

    private void BuildTiny(string store, string name, string greeting)
    {
        using var ctx = new TinyContext($"images:\n  {name}:\n    from: scratch\n    steps:\n{TinyContext.RootStep}"
            + $"      - run: echo {greeting} > /etc/greeting\n");
        var r = Kiln(store, "build", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
    }

    private JsonElement SkopeoInspect(string reference)
    {
        var r = KilnProcess.Tool("skopeo", "inspect", "--tls-verify=false", "--raw", "docker://" + reference);
        Assert.True(r.ExitCode == 0, r.All);
        var digest = KilnProcess.Tool("skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}", "docker://" + reference);
        Assert.True(digest.ExitCode == 0, digest.All);
        return JsonSerializer.SerializeToElement(new { Digest = digest.Stdout.Trim(), Raw = r.Stdout });
    }

    private static string Digest(JsonElement inspected) => inspected.GetProperty("Digest").GetString()!;

    private static JsonDocument Json(KilnProcess.Result r) => JsonDocument.Parse(r.Stdout);

    [Fact]
    public void A_pull_of_a_blob_tampered_with_in_the_registrys_storage_exits_1_and_names_nothing()
    {
        BuildTiny(_store.Path, "tiny", "tamper");
        string reference = $"{_registry.Host}/team/tampered:v1";
        var push = Kiln(_store.Path, "push", "tiny", reference, "--insecure");
        Assert.True(push.ExitCode == 0, push.All);
        // The registry serves its files as they are: the last layer's bytes change, its size does not.
        string layer = StoreReader.LayerDigests(_store.Path, "tiny")[^1];
        string data = Path.Combine(_registry.StorageDirectory, "docker/registry/v2/blobs/sha256", Hex(layer)[..2], Hex(layer), "data");
        var bytes = File.ReadAllBytes(data);
        bytes[bytes.Length / 2] ^= 0xff;
        File.WriteAllBytes(data, bytes);

        var pull = Kiln(_other.Path, "pull", reference, "--insecure");
        Assert.True(pull.ExitCode == 1, pull.All);
        Assert.Contains(layer, pull.All);
        Assert.True(pull.All.Contains("refused: its content hashes to", StringComparison.Ordinal), pull.All);
        var index = Path.Combine(_other.Path, "index.json");
        Assert.True(!File.Exists(index) || !File.ReadAllText(index).Contains("team/tampered", StringComparison.Ordinal), "the image was named");
        Assert.False(File.Exists(StoreReader.BlobPath(_other.Path, layer)), "the tampered layer is in the store");
        var verify = Kiln(_other.Path, "verify");
        Assert.True(verify.ExitCode == 0, verify.All);
        Leftovers.AssertNone(_other.Path);
    }

    [Fact]
    public void Push_gives_skopeo_the_local_digest_and_a_pull_into_an_empty_store_the_same_one_that_verifies()
    {
        BuildTiny(_store.Path, "tiny", "hello");
        string local = StoreReader.ManifestDigest(_store.Path, "tiny");
        string reference = $"{_registry.Host}/team/tiny:v1";

        var push = Kiln(_store.Path, "push", "tiny", reference, "--insecure");
        Assert.True(push.ExitCode == 0, push.All);
        Assert.Contains("3 blobs", push.Stdout); // two layers and the config
        Assert.Contains("0 skipped as present, 0 mounted", push.Stdout);
        Assert.Equal(local, Digest(SkopeoInspect(reference)));

        // Again: every blob is there (HEAD), nothing is uploaded.
        var again = Kiln(_store.Path, "push", "tiny", reference, "--insecure", "--json");
        Assert.True(again.ExitCode == 0, again.All);
        using (var json = Json(again))
        {
            Assert.Equal(local, json.RootElement.GetProperty("digest").GetString());
            Assert.Equal(0, json.RootElement.GetProperty("blobs").GetInt32());
            Assert.Equal(3, json.RootElement.GetProperty("skipped").GetInt32());
            Assert.Equal(0, json.RootElement.GetProperty("bytes").GetInt64());
        }

        var pull = Kiln(_other.Path, "pull", reference, "--insecure", "--json");
        Assert.True(pull.ExitCode == 0, pull.All);
        using (var json = Json(pull))
        {
            Assert.Equal(local, json.RootElement.GetProperty("digest").GetString());
            Assert.Equal(3, json.RootElement.GetProperty("blobs").GetInt32());
        }
        Assert.Equal(local, StoreReader.ManifestDigest(_other.Path, reference));
        Assert.Equal(StoreReader.LayerDigests(_store.Path, "tiny"), StoreReader.LayerDigests(_other.Path, reference));
        var verify = Kiln(_other.Path, "verify");
        Assert.True(verify.ExitCode == 0, verify.All);

        var named = Kiln(_other.Path, "pull", reference, "--as", "tiny-copy", "--insecure");
        Assert.True(named.ExitCode == 0, named.All);
        Assert.Contains("3 skipped as present", named.Stdout);
        Assert.Equal(local, StoreReader.ManifestDigest(_other.Path, "tiny-copy"));
        Leftovers.AssertNone(_other.Path);
    }

    /// <summary>The snapshot dirs of <paramref name="store"/> (an extracted layer each).</summary>
    private static string[] Snapshots(string store)
    {
        var dir = Path.Combine(store, "kiln", "snapshots");
        return Directory.Exists(dir) ? [.. Directory.GetFileSystemEntries(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal)!] : [];
    }

    [Fact]
    public void A_pulled_image_is_named_with_its_blobs_only_and_a_test_a_build_and_an_export_extract_it_on_first_use()
    {
        BuildTiny(_store.Path, "tiny", "lazy");
        string reference = $"{_registry.Host}/team/lazy:v1";
        Assert.Equal(0, Kiln(_store.Path, "push", "tiny", reference, "--insecure").ExitCode);
        var pull = Kiln(_other.Path, "pull", reference, "--as", "pulled", "--insecure");
        Assert.True(pull.ExitCode == 0, pull.All);
        // As skopeo leaves an image: the blobs and the name, no layer unpacked; the store is consistent so.
        Assert.Empty(Snapshots(_other.Path));
        var verify = Kiln(_other.Path, "verify");
        Assert.True(verify.ExitCode == 0, verify.All);
        string[] diffIds = [.. JsonNode.Parse(File.ReadAllText(StoreReader.BlobPath(_other.Path,
            JsonNode.Parse(File.ReadAllText(StoreReader.BlobPath(_other.Path, StoreReader.ManifestDigest(_other.Path, "pulled"))))!["config"]!["digest"]!.GetValue<string>())))!
            ["rootfs"]!["diff_ids"]!.AsArray().Select(d => Hex(d!.GetValue<string>()))];
        Assert.Equal(2, diffIds.Length);

        // kiln test reads the image's files: its layers are extracted then.
        using var ctx = new TinyContext($"images:\n  pulled:\n    from: {reference}\n    test:\n      file:\n        /etc/greeting: {{contains: [lazy]}}\n");
        var test = Kiln(_other.Path, "test", "pulled", "--phase", "bake", "-f", ctx.Path);
        Assert.True(test.ExitCode == 0, test.All);
        Assert.Equal(diffIds.Order(StringComparer.Ordinal), Snapshots(_other.Path));

        // Back to the state a pull leaves: a build's step extracts them.
        foreach (var id in diffIds)
        {
            KilnProcess.Tool("rm", "-rf", Path.Combine(_other.Path, "kiln", "snapshots", id));
        }
        Assert.Equal(0, Kiln(_other.Path, "verify").ExitCode);
        using var app = new TinyContext($"images:\n  app:\n    from: {reference}\n    steps:\n      - run: cat /etc/greeting > /seen\n");
        var build = Kiln(_other.Path, "build", app.Path, "--insecure");
        Assert.True(build.ExitCode == 0, build.All);
        Assert.Subset(Snapshots(_other.Path).ToHashSet(), diffIds.ToHashSet());

        // A rootfs export reads the blobs themselves.
        var tar = _work.Sub("app.tar");
        var export = Kiln(_other.Path, "export", "app", "--format", "rootfs", "-o", tar);
        Assert.True(export.ExitCode == 0, export.All);
        Assert.Contains("lazy", KilnProcess.Tool("tar", "-xOf", tar, "./seen").Stdout + KilnProcess.Tool("tar", "-xOf", tar, "seen").Stdout);
        var again = Kiln(_other.Path, "verify");
        Assert.True(again.ExitCode == 0, again.All);
        Leftovers.AssertNone(_other.Path);
    }

    [Fact]
    public void A_push_to_another_repository_of_the_registry_names_its_blobs_and_skopeo_copies_them_out_unchanged()
    {
        BuildTiny(_store.Path, "tiny", "hi");
        string local = StoreReader.ManifestDigest(_store.Path, "tiny");
        var push = Kiln(_store.Path, "push", "tiny", $"{_registry.Host}/out/tiny:latest", "--insecure");
        Assert.True(push.ExitCode == 0, push.All);

        var layout = _work.Sub("skopeo-layout");
        var copy = KilnProcess.Tool("skopeo", "copy", "--src-tls-verify=false", $"docker://{_registry.Host}/out/tiny", $"oci:{layout}:copied");
        Assert.True(copy.ExitCode == 0, copy.All);
        Assert.Equal(local, StoreReader.ManifestDigest(layout, "copied"));
        using var manifest = JsonDocument.Parse(File.ReadAllText(StoreReader.BlobPath(layout, local)));
        using var ours = JsonDocument.Parse(File.ReadAllText(StoreReader.BlobPath(_store.Path, local)));
        Assert.Equal(ours.RootElement.GetProperty("config").GetProperty("digest").GetString(),
            manifest.RootElement.GetProperty("config").GetProperty("digest").GetString());
        Assert.Equal(StoreReader.LayerDigests(_store.Path, "tiny"), StoreReader.LayerDigests(layout, "copied"));
        foreach (var digest in StoreReader.LayerDigests(layout, "copied"))
        {
            Assert.Equal(File.ReadAllBytes(StoreReader.BlobPath(_store.Path, digest)), File.ReadAllBytes(StoreReader.BlobPath(layout, digest)));
        }

        // Pushed once, the blobs are known to be in out/tiny: a push to another repository mounts them (the registry
        // answers 201 to each mount), uploading nothing, and the image pulls back from there byte for byte.
        var mounted = Kiln(_store.Path, "push", "tiny", $"{_registry.Host}/mirror/tiny:v1", "--insecure", "--json");
        Assert.True(mounted.ExitCode == 0, mounted.All);
        using (var json = Json(mounted))
        {
            Assert.Equal(local, json.RootElement.GetProperty("digest").GetString());
            Assert.Equal(3, json.RootElement.GetProperty("mounted").GetInt32());
            Assert.Equal(0, json.RootElement.GetProperty("blobs").GetInt32());
            Assert.Equal(0, json.RootElement.GetProperty("bytes").GetInt64());
        }
        var pull = Kiln(_other.Path, "pull", $"{_registry.Host}/mirror/tiny:v1", "--insecure", "--as", "mirrored");
        Assert.True(pull.ExitCode == 0, pull.All);
        Assert.Equal(local, StoreReader.ManifestDigest(_other.Path, "mirrored"));
        var config = JsonNode.Parse(File.ReadAllText(StoreReader.BlobPath(_store.Path, local)))!["config"]!["digest"]!.GetValue<string>();
        foreach (var digest in StoreReader.LayerDigests(_store.Path, "tiny").Append(config).Append(local))
        {
            Assert.Equal(File.ReadAllBytes(StoreReader.BlobPath(_store.Path, digest)), File.ReadAllBytes(StoreReader.BlobPath(_other.Path, digest)));
        }

        // A pull records where it found the blobs too: the other store's push to a third repository mounts them. A
        // record that names a repository without the blob costs an upload, not a failure.
        var fromPull = Kiln(_other.Path, "push", "mirrored", $"{_registry.Host}/third/tiny:v1", "--insecure", "--json");
        Assert.True(fromPull.ExitCode == 0, fromPull.All);
        using (var json = Json(fromPull))
        {
            Assert.Equal(3, json.RootElement.GetProperty("mounted").GetInt32());
        }
        var record = Path.Combine(_store.Path, "kiln", "registry-blobs", _registry.Host.Replace(':', '_') + ".json");
        File.WriteAllText(record, File.ReadAllText(record).Replace("mirror/tiny", "no/such", StringComparison.Ordinal));
        var stale = Kiln(_store.Path, "push", "tiny", $"{_registry.Host}/fourth/tiny:v1", "--insecure", "--json");
        Assert.True(stale.ExitCode == 0, stale.All);
        using (var json = Json(stale))
        {
            Assert.Equal(0, json.RootElement.GetProperty("mounted").GetInt32());
            Assert.Equal(3, json.RootElement.GetProperty("blobs").GetInt32());
        }
        Assert.Equal(local, Digest(SkopeoInspect($"{_registry.Host}/fourth/tiny:v1")));
    }

    [Fact]
    public void Registries_conf_moves_a_from_reference_and_the_cache_target_to_its_location()
    {
        BuildTiny(_store.Path, "base", "moved");
        string local = StoreReader.ManifestDigest(_store.Path, "base");
        Assert.Equal(0, Kiln(_store.Path, "push", "base", $"{_registry.Host}/team/base:v1", "--insecure").ExitCode);
        // Nothing listens at the prefix's host: only the location entry makes the build reach the registry.
        string nowhere = $"127.0.0.1:{RegistryServer.FreePort()}/moved";
        var conf = _work.Sub("registries.conf");
        File.WriteAllText(conf, $"[[registry]]\nprefix = \"{nowhere}\"\nlocation = \"{_registry.Host}/team\"\n");
        using var app = new TinyContext($"images:\n  app:\n    from: {nowhere}/base:v1\n    steps:\n      - run: cat /etc/greeting > /seen\n");
        var psi = KilnProcess.StartInfo(_other.Path, "build", app.Path, "--insecure", "--cache-to", $"{nowhere}/cache");
        psi.Environment["REGISTRY_AUTH_FILE"] = AuthFile;
        psi.Environment["CONTAINERS_REGISTRIES_CONF"] = conf;
        var build = KilnProcess.Run(psi, TimeSpan.FromMinutes(5));
        Assert.True(build.ExitCode == 0, build.All);
        // Named as written, fetched from the location; the cache entries went there too.
        Assert.Equal(local, StoreReader.ManifestDigest(_other.Path, $"{nowhere}/base:v1"));
        var tags = KilnProcess.Tool("skopeo", "list-tags", "--tls-verify=false", $"docker://{_registry.Host}/team/cache");
        Assert.True(tags.ExitCode == 0, tags.All);
        Assert.Contains("kiln-step-", tags.Stdout);
    }

    [Fact]
    public void An_image_skopeo_pushed_pulls_with_its_manifest_config_and_layer_digests_kept()
    {
        var img = new ForeignImage();
        var top = img.Image([BusyboxLayer(), FileLayer("hello", "from skopeo\n")], Packing.Gzip, docker: false);
        var layout = _work.Sub("foreign");
        img.WriteLayout(layout, top, "v2");
        string reference = $"{_registry.Host}/foreign/tiny:v2";
        var copy = KilnProcess.Tool("skopeo", "copy", "--dest-tls-verify=false", $"oci:{layout}:v2", "docker://" + reference);
        Assert.True(copy.ExitCode == 0, copy.All);

        var pull = Kiln(_other.Path, "pull", reference, "--insecure", "--as", "foreign");
        Assert.True(pull.ExitCode == 0, pull.All);
        Assert.Equal((string)top["digest"]!, StoreReader.ManifestDigest(_other.Path, "foreign"));
        using var manifest = JsonDocument.Parse(File.ReadAllText(StoreReader.BlobPath(_other.Path, (string)top["digest"]!)));
        using var original = JsonDocument.Parse(File.ReadAllText(StoreReader.BlobPath(layout, (string)top["digest"]!)));
        Assert.Equal(original.RootElement.GetProperty("config").GetProperty("digest").GetString(),
            manifest.RootElement.GetProperty("config").GetProperty("digest").GetString());
        Assert.True(File.Exists(StoreReader.BlobPath(_other.Path, manifest.RootElement.GetProperty("config").GetProperty("digest").GetString()!)));
        Assert.Equal(StoreReader.LayerDigests(layout, "v2"), StoreReader.LayerDigests(_other.Path, "foreign"));
        var verify = Kiln(_other.Path, "verify");
        Assert.True(verify.ExitCode == 0, verify.All);
    }

    [Theory]
    [InlineData("push", "team/tiny:v1")]
    [InlineData("push", "tiny")]
    [InlineData("pull", "debian:bookworm")]
    [InlineData("pull", "library/debian")]
    public void A_reference_without_a_registry_host_exits_2_naming_it(string verb, string reference)
    {
        BuildTiny(_store.Path, "tiny", "x");
        var before = File.ReadAllText(Path.Combine(_store.Path, "index.json"));
        var r = verb == "push" ? Kiln(_store.Path, "push", "tiny", reference) : Kiln(_store.Path, "pull", reference);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"'{reference}'", r.Stderr);
        Assert.Contains("no registry host", r.Stderr);
        Assert.Equal(before, File.ReadAllText(Path.Combine(_store.Path, "index.json")));
    }

    [Fact]
    public void A_registry_that_is_not_there_exits_1_naming_it_and_names_nothing()
    {
        BuildTiny(_store.Path, "tiny", "x");
        int port = RegistryServer.FreePort();
        var push = Kiln(_store.Path, "push", "tiny", $"127.0.0.1:{port}/gone/tiny:v1", "--insecure");
        Assert.Equal(1, push.ExitCode);
        Assert.Contains($"127.0.0.1:{port}", push.Stderr);
        var pull = Kiln(_other.Path, "pull", $"{_registry.Host}/no/such:v1", "--insecure");
        Assert.Equal(1, pull.ExitCode);
        Assert.Contains("not found", pull.Stderr);
        Assert.DoesNotContain("no/such", File.Exists(Path.Combine(_other.Path, "index.json")) ? File.ReadAllText(Path.Combine(_other.Path, "index.json")) : "");
    }

    [Fact]
    public void From_a_registry_is_pulled_once_pinned_by_digest_and_re_resolved_only_with_refresh()
    {
        BuildTiny(_store.Path, "base", "first");
        string first = StoreReader.ManifestDigest(_store.Path, "base");
        string reference = $"{_registry.Host}/bases/tiny:stable";
        Assert.Equal(0, Kiln(_store.Path, "push", "base", reference, "--insecure").ExitCode);

        using var ctx = new TinyContext($"images:\n  app:\n    from: {reference}\n    steps:\n      - run: cat /etc/greeting > /etc/seen\n");
        KilnProcess.Result Build(params string[] extra)
        {
            var r = Kiln(_other.Path, ["build", ctx.Path, "--insecure", "--json", .. extra]);
            Assert.True(r.ExitCode == 0, r.All);
            return r;
        }
        string BaseDigest(KilnProcess.Result r)
        {
            using var json = Json(r);
            return json.RootElement.GetProperty("images")[0].GetProperty("baseDigest").GetString()!;
        }
        string Seen() => string.Join("", StoreReader.LayerDigests(_other.Path, "app")[^1]);

        var built = Build();
        Assert.Equal(first, BaseDigest(built));
        Assert.Equal(first, StoreReader.ManifestDigest(_other.Path, reference)); // pinned in the store under the reference
        var firstLayer = Seen();

        // The tag moves on the registry.
        BuildTiny(_store.Path, "base", "second");
        string second = StoreReader.ManifestDigest(_store.Path, "base");
        Assert.NotEqual(first, second);
        Assert.Equal(0, Kiln(_store.Path, "push", "base", reference, "--insecure").ExitCode);

        var kept = Build();
        Assert.Equal(first, BaseDigest(kept));
        Assert.Equal(firstLayer, Seen());
        using (var json = Json(kept))
        {
            Assert.Equal(0, json.RootElement.GetProperty("images")[0].GetProperty("stepsRun").GetInt32());
        }

        var refreshed = Build("--refresh");
        Assert.Equal(second, BaseDigest(refreshed));
        Assert.Equal(second, StoreReader.ManifestDigest(_other.Path, reference));
        Assert.NotEqual(firstLayer, Seen());

        // The pin moved with it: a build without --refresh now keeps the second.
        Assert.Equal(second, BaseDigest(Build()));
        var verify = Kiln(_other.Path, "verify");
        Assert.True(verify.ExitCode == 0, verify.All);
    }

    [Theory]
    [InlineData("tiny@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "no registry host")]
    [InlineData("127.0.0.1:5000/UPPER/case:v1", "not a valid repository name")]
    public void A_from_reference_the_registry_client_refuses_is_a_definition_error_with_file_and_line(string from, string message)
    {
        using var ctx = new TinyContext($"images:\n  app:\n    from: {from}\n");
        var r = Kiln(_other.Path, "build", ctx.Path);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("kiln.yaml:3:", r.Stderr);
        Assert.Contains(message, r.Stderr);
    }

    /// <summary>kiln with <paramref name="input"/> on its standard input.</summary>
    private KilnProcess.Result KilnWithInput(string input, params string[] args)
    {
        var psi = KilnProcess.StartInfo(_store.Path, args);
        psi.Environment["REGISTRY_AUTH_FILE"] = AuthFile;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.StandardInput.Write(input);
        p.StandardInput.Close();
        Assert.True(p.WaitForExit(TimeSpan.FromMinutes(2)));
        return new KilnProcess.Result(p.ExitCode, stdout.Result, stderr.Result);
    }

    [Fact]
    public async Task Login_checks_the_password_stores_it_for_push_and_logout_removes_it_never_printing_it()
    {
        var root = Directory.CreateTempSubdirectory("kiln-registry-").FullName;
        var pki = TestPki.Create(Path.Combine(root, "pki"));
        var htpasswd = Path.Combine(root, "htpasswd");
        await File.WriteAllTextAsync(htpasswd, TestPki.Htpasswd("alice", "s3cret-pass"));
        await using var secured = await RegistryServer.StartAsync(
            new RegistryServer.Settings { Tls = (pki.ServerCertificate, pki.ServerKey), Htpasswd = htpasswd }, root);
        BuildTiny(_store.Path, "tiny", "locked");
        string reference = $"{secured.Host}/private/tiny:v1";

        var anonymous = Kiln(_store.Path, "push", "tiny", reference, "--insecure");
        Assert.Equal(1, anonymous.ExitCode);
        Assert.Contains("authentication failed", anonymous.Stderr);

        var wrong = KilnWithInput("wrong-pass-1\n", "login", secured.Host, "-u", "alice", "--password-stdin", "--insecure");
        Assert.Equal(1, wrong.ExitCode);
        Assert.Contains("authentication failed", wrong.Stderr);
        Assert.DoesNotContain("wrong-pass-1", wrong.All);
        Assert.False(File.Exists(AuthFile));

        var noUser = KilnWithInput("s3cret-pass\n", "login", secured.Host, "--password-stdin", "--insecure");
        Assert.Equal(2, noUser.ExitCode);

        var login = KilnWithInput("s3cret-pass\n", "login", secured.Host, "-u", "alice", "--password-stdin", "--insecure");
        Assert.True(login.ExitCode == 0, login.All);
        Assert.DoesNotContain("s3cret-pass", login.All);
        Assert.Contains(secured.Host, await File.ReadAllTextAsync(AuthFile));

        var push = Kiln(_store.Path, "push", "tiny", reference, "--insecure", "--json");
        Assert.True(push.ExitCode == 0, push.All);
        Assert.DoesNotContain("s3cret-pass", push.All);
        Assert.DoesNotContain("alice", push.All);

        var logout = Kiln(_store.Path, "logout", secured.Host);
        Assert.True(logout.ExitCode == 0, logout.All);
        Assert.DoesNotContain(secured.Host, await File.ReadAllTextAsync(AuthFile));
        var after = Kiln(_other.Path, "pull", reference, "--insecure");
        Assert.Equal(1, after.ExitCode);
        Assert.Contains("authentication failed", after.Stderr);

        // A registry the auth file hands to a credential helper is logged out of by that helper's erase.
        string bin = _work.Sub("bin");
        Directory.CreateDirectory(bin);
        string erased = _work.Sub("erased");
        string helper = Path.Combine(bin, "docker-credential-kilntest");
        await File.WriteAllTextAsync(helper, $$"""
            #!/bin/sh
            read host
            [ "$1" = erase ] && echo "$host" >> {{erased}} && exit 0
            echo 'credentials not found'; exit 1

            """);
        File.SetUnixFileMode(helper, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        await File.WriteAllTextAsync(AuthFile, $"{{\"credHelpers\":{{\"{secured.Host}\":\"kilntest\"}}}}");
        var psi = KilnProcess.StartInfo(_store.Path, ["logout", secured.Host]);
        psi.Environment["REGISTRY_AUTH_FILE"] = AuthFile;
        psi.Environment["PATH"] = bin + ":" + Environment.GetEnvironmentVariable("PATH");
        var helped = KilnProcess.Run(psi, TimeSpan.FromMinutes(1));
        Assert.True(helped.ExitCode == 0, helped.All);
        Assert.Contains("credential helper kilntest", helped.Stdout);
        Assert.Equal(secured.Host + "\n", await File.ReadAllTextAsync(erased));
    }

    /// <summary>A tiny image with one layer of <paramref name="bytes"/> random (incompressible) bytes; returns that
    /// layer's digest.</summary>
    private string BuildLarge(string store, string name, int bytes)
    {
        using var ctx = new TinyContext($"images:\n  {name}:\n    from: scratch\n    steps:\n{TinyContext.RootStep}"
            + "      - copy: big.bin\n        to: /big.bin\n");
        var random = new byte[bytes];
        new Random(7).NextBytes(random);
        File.WriteAllBytes(Path.Combine(ctx.Path, "big.bin"), random);
        var r = Kiln(store, "build", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
        return StoreReader.LayerDigests(store, name)[^1];
    }

    /// <summary>What only the upload of <paramref name="digest"/> has in its path: the completing PUT names the digest.</summary>
    private static string Hex(string digest) => digest["sha256:".Length..];

    [Fact]
    public async Task Push_and_pull_survive_resets_500s_and_429s_with_the_same_digests()
    {
        string big = BuildLarge(_store.Path, "big", 6_000_000);
        string local = StoreReader.ManifestDigest(_store.Path, "big");
        await using var proxy = new FaultProxy(_registry.Port);
        // The upload of the large layer breaks halfway: the stream the copy handed over is spent, so the retry
        // reads the blob again from the store.
        proxy.Add(new FaultProxy.Fault(FaultProxy.FaultKind.ResetUpload, "PUT", Hex(big), AfterBytes: 3_000_000));
        proxy.Add(new FaultProxy.Fault(FaultProxy.FaultKind.Status500, "HEAD", "/blobs/"));
        proxy.Add(new FaultProxy.Fault(FaultProxy.FaultKind.Status429, "PUT", "/manifests/"));
        string reference = $"{proxy.Host}/faults/big:v1";
        var push = Kiln(_store.Path, "push", "big", reference, "--insecure");
        Assert.True(push.ExitCode == 0, push.All + string.Join("\n", proxy.Injected));
        Assert.Equal(3, proxy.Injected.Count);
        Assert.Equal(local, Digest(SkopeoInspect($"{_registry.Host}/faults/big:v1")));

        proxy.Add(new FaultProxy.Fault(FaultProxy.FaultKind.ResetDownload, "GET", "/blobs/" + big, AfterBytes: 2_500_000));
        proxy.Add(new FaultProxy.Fault(FaultProxy.FaultKind.Status500, "GET", "/manifests/"));
        var pull = Kiln(_other.Path, "pull", reference, "--insecure", "--as", "big");
        Assert.True(pull.ExitCode == 0, pull.All);
        Assert.Equal(5, proxy.Injected.Count);
        Assert.Equal(local, StoreReader.ManifestDigest(_other.Path, "big"));
        Assert.Equal(File.ReadAllBytes(StoreReader.BlobPath(_store.Path, big)), File.ReadAllBytes(StoreReader.BlobPath(_other.Path, big)));
        var verify = Kiln(_other.Path, "verify");
        Assert.True(verify.ExitCode == 0, verify.All);
        Leftovers.AssertNone(_other.Path);
    }

    [Fact]
    public async Task A_push_whose_blob_never_uploads_exits_1_naming_the_blob_and_tags_nothing()
    {
        string big = BuildLarge(_store.Path, "big", 2_000_000);
        await using var proxy = new FaultProxy(_registry.Port);
        for (int i = 0; i < 12; i++)
        {
            proxy.Add(new FaultProxy.Fault(FaultProxy.FaultKind.ResetUpload, "PUT", Hex(big), AfterBytes: 1_000_000));
        }
        var push = Kiln(_store.Path, "push", "big", $"{proxy.Host}/never/big:v1", "--insecure");
        Assert.Equal(1, push.ExitCode);
        Assert.Contains(big, push.Stderr);
        var tags = KilnProcess.Tool("skopeo", "inspect", "--tls-verify=false", $"docker://{_registry.Host}/never/big:v1");
        Assert.NotEqual(0, tags.ExitCode);
    }
}
