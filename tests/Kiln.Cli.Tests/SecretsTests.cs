using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;

namespace Kiln.Cli.Tests;

/// <summary><c>secrets:</c> on run steps (issue 5): mounted read-only at /run/secrets/ID only while the step runs,
/// never stored in any blob, config, history, cache entry or snapshot, and never part of the cache key.</summary>
public sealed class SecretsTests : IDisposable
{
    private readonly TempDir _store = new("kiln-store");

    public void Dispose() => _store.Dispose();

    private static string Hash(string s) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(s)));

    private static string Yaml(string fileValue, string envValue) =>
        "images:\n  tiny:\n    from: scratch\n    steps:\n" + TinyContext.RootStep +
        $"      - run: echo \"{Hash(fileValue)}  /run/secrets/tok\" | sha256sum -c && echo \"{Hash(envValue)}  /run/secrets/envtok\" | sha256sum -c" +
        " && ! sh -c 'echo x > /run/secrets/tok' 2>/dev/null && ls /run/secrets > /listing\n" +
        "        secrets:\n          - {id: tok, file: token.txt}\n          - {id: envtok, env: KILN_TEST_SECRET_ENV}\n" +
        "      - run: test ! -e /run/secrets/tok && echo after > /after\n";

    private KilnProcess.Result Build(TinyContext ctx, string envValue)
    {
        var psi = KilnProcess.StartInfo(_store.Path, "build", "--json", ctx.Path);
        psi.Environment["KILN_TEST_SECRET_ENV"] = envValue;
        return KilnProcess.Run(psi, TimeSpan.FromMinutes(5));
    }

    /// <summary>Every file of the store, with gzip layers also decompressed.</summary>
    private IEnumerable<(string Path, byte[] Bytes)> StoreContents()
    {
        foreach (var file in Directory.EnumerateFiles(_store.Path, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 }))
        {
            if (new FileInfo(file).LinkTarget is not null || file.Contains("/kiln/procs/", StringComparison.Ordinal))
            {
                continue;
            }
            var bytes = File.ReadAllBytes(file);
            yield return (file, bytes);
            if (bytes is [0x1f, 0x8b, ..])
            {
                using var gz = new GZipStream(new MemoryStream(bytes), CompressionMode.Decompress);
                var tar = new MemoryStream();
                gz.CopyTo(tar);
                yield return (file + " (decompressed)", tar.ToArray());
            }
        }
    }

    [Fact]
    public void Secrets_are_mounted_for_their_step_only_and_no_blob_config_history_or_snapshot_holds_them()
    {
        string fileValue = "kiln-file-secret-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
        string envValue = "kiln-env-secret-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
        using var ctx = new TinyContext(Yaml(fileValue, envValue));
        ctx.Write("token.txt", fileValue);
        var r = Build(ctx, envValue);
        Assert.True(r.ExitCode == 0, r.All);
        Assert.DoesNotContain(fileValue, r.All);
        Assert.DoesNotContain(envValue, r.All);

        var layers = StoreReader.LayerDigests(_store.Path, "tiny");
        var secretLayer = StoreReader.LayerEntries(_store.Path, layers[1]);
        Assert.Contains("listing", secretLayer);
        Assert.DoesNotContain(secretLayer, e => e.StartsWith("run", StringComparison.Ordinal));
        int scanned = 0;
        foreach (var (path, bytes) in StoreContents())
        {
            scanned++;
            Assert.True(bytes.AsSpan().IndexOf(Encoding.UTF8.GetBytes(fileValue)) < 0, $"{path} holds the file secret");
            Assert.True(bytes.AsSpan().IndexOf(Encoding.UTF8.GetBytes(envValue)) < 0, $"{path} holds the env secret");
        }
        Assert.True(scanned > 5);
        Leftovers.AssertNone(_store.Path);

        // The content is not part of the cache key: new values, same image, nothing runs.
        var digest = StoreReader.ManifestDigest(_store.Path, "tiny");
        ctx.Write("token.txt", "rotated");
        var again = Build(ctx, "rotated too");
        Assert.True(again.ExitCode == 0, again.All);
        Assert.Contains("\"stepsRun\": 0", again.Stdout);
        Assert.Equal(digest, StoreReader.ManifestDigest(_store.Path, "tiny"));
    }

    [Fact]
    public void A_missing_secret_fails_the_step_with_a_clear_error()
    {
        using var ctx = new TinyContext(Yaml("a", "b"));
        var psi = KilnProcess.StartInfo(_store.Path, "build", ctx.Path);
        psi.Environment.Remove("KILN_TEST_SECRET_ENV");
        ctx.Write("token.txt", "a");
        var r = KilnProcess.Run(psi, TimeSpan.FromMinutes(5));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("KILN_TEST_SECRET_ENV is not set", r.Stderr);
        Leftovers.AssertNone(_store.Path);
    }

    [Theory]
    [InlineData("[{id: a}]", "exactly one of `file`")]
    [InlineData("[{id: a, file: x, env: Y}]", "exactly one of `file`")]
    [InlineData("[{id: ../x, file: x}]", "not a valid secret id")]
    [InlineData("[{id: a, file: x}, {id: a, env: Y}]", "given twice")]
    [InlineData("[{id: a, file: x, mode: \"0400\"}]", "mode")]
    public void Malformed_secrets_are_definition_errors(string secrets, string message)
    {
        using var ctx = new TinyContext("images:\n  tiny:\n    from: scratch\n    steps:\n" + TinyContext.RootStep +
            $"      - run: true\n        secrets: {secrets}\n");
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(message, r.Stderr);
    }

    [Fact]
    public void A_secret_looking_value_in_env_or_config_env_gets_a_warning()
    {
        using var ctx = new TinyContext("images:\n  tiny:\n    from: scratch\n    steps:\n" + TinyContext.RootStep +
            "      - env: {GH: ghp_abcdefghijklmnopqrstuvwxyz0123456789, LANG: C.UTF-8}\n" +
            "    config:\n      env: {DB_PASSWORD: hunter2hunter2, DB_PASSWORD_FILE: /run/secrets/db}\n");
        var r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        Assert.True(r.ExitCode == 0, r.All);
        Assert.Contains("warning: tiny: step 2 (env) sets GH", r.All);
        Assert.Contains("warning: tiny: config.env sets DB_PASSWORD,", r.All);
        Assert.DoesNotContain("sets LANG", r.All);
        Assert.DoesNotContain("sets DB_PASSWORD_FILE", r.All);
    }
}
