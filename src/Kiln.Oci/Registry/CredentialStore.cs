using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace Kiln.Oci.Registry;

/// <summary>Registry credentials in the containers conventions: the auth files (<c>auths</c> with base64
/// <c>user:password</c>, <c>credHelpers</c> and <c>credsStore</c> naming a <c>docker-credential-NAME</c> program),
/// read in order, the first that knows the registry winning; login and logout write the first file only.</summary>
public sealed class CredentialStore
{
    private readonly Func<string, string> _helperProgram;

    /// <param name="files">The auth files to read, first match wins; missing files are skipped.</param>
    /// <param name="writeFile">Where <see cref="Store"/> and <see cref="Remove"/> write.</param>
    /// <param name="helperProgram">The program run for a credential helper's name (default: <c>docker-credential-NAME</c> on PATH).</param>
    public CredentialStore(IReadOnlyList<string> files, string writeFile, Func<string, string>? helperProgram = null)
    {
        Files = files;
        WriteFile = writeFile;
        _helperProgram = helperProgram ?? (name => "docker-credential-" + name);
    }

    public IReadOnlyList<string> Files { get; }

    public string WriteFile { get; }

    /// <summary>The files containers tools use, from the given environment: <c>REGISTRY_AUTH_FILE</c>, else
    /// <c>$XDG_RUNTIME_DIR/containers/auth.json</c>; then <c>~/.config/containers/auth.json</c> and
    /// <c>~/.docker/config.json</c>.</summary>
    public static CredentialStore FromEnvironment(Func<string, string?> getenv)
    {
        var files = new List<string>();
        string? home = getenv("HOME");
        string? primary = getenv("REGISTRY_AUTH_FILE") is { Length: > 0 } explicitFile ? explicitFile
            : getenv("XDG_RUNTIME_DIR") is { Length: > 0 } runtime ? Path.Combine(runtime, "containers", "auth.json")
            : null;
        string? userConfig = home is null ? null : Path.Combine(home, ".config", "containers", "auth.json");
        if (primary is not null)
        {
            files.Add(primary);
        }
        if (userConfig is not null)
        {
            files.Add(userConfig);
        }
        if (home is not null)
        {
            files.Add(Path.Combine(home, ".docker", "config.json"));
        }
        string write = primary ?? userConfig ?? throw RegistryException.BadFile("auth.json",
            "no place for credentials: none of REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR and HOME is set");
        return new CredentialStore(files, write);
    }

    /// <summary>The credential for <paramref name="registry"/> (and <paramref name="repository"/>, for entries
    /// written per repository), or null when no file knows it.</summary>
    public async Task<RegistryCredential?> GetAsync(string registry, string? repository = null, CancellationToken cancellationToken = default)
    {
        foreach (var file in Files)
        {
            if (!File.Exists(file))
            {
                continue;
            }
            byte[] bytes;
            try
            {
                bytes = await File.ReadAllBytesAsync(file, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw RegistryException.BadFile(file, "cannot be read: " + e.Message, e);
            }
            var found = await FromFileAsync(file, bytes, registry, repository, cancellationToken).ConfigureAwait(false);
            if (found is not null)
            {
                return found;
            }
        }
        return null;
    }

    private async Task<RegistryCredential?> FromFileAsync(string file, byte[] bytes, string registry, string? repository, CancellationToken cancellationToken)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(bytes);
        }
        catch (JsonException e)
        {
            // The parser's message quotes no content, only a position: it cannot leak a secret.
            throw RegistryException.BadFile(file, $"not JSON (line {e.LineNumber + 1}): the auth file cannot be read", null);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw RegistryException.BadFile(file, "not a JSON object");
            }
            if (root.TryGetProperty("credHelpers", out var helpers) && helpers.ValueKind == JsonValueKind.Object
                && helpers.TryGetProperty(registry, out var helper) && helper.ValueKind == JsonValueKind.String)
            {
                return await RunHelperAsync(helper.GetString()!, registry, cancellationToken).ConfigureAwait(false);
            }
            if (root.TryGetProperty("auths", out var auths) && auths.ValueKind == JsonValueKind.Object)
            {
                // The most specific key first: HOST/REPO/PATH, then its parents, then HOST.
                var keys = auths.EnumerateObject().Select(p => (Key: NormalizeKey(p.Name), p.Value)).ToList();
                foreach (var candidate in Candidates(registry, repository))
                {
                    var match = keys.FirstOrDefault(k => k.Key == candidate);
                    if (match.Key is not null)
                    {
                        var credential = Decode(file, candidate, match.Value);
                        if (credential is not null)
                        {
                            return credential;
                        }
                    }
                }
            }
            if (root.TryGetProperty("credsStore", out var store) && store.ValueKind == JsonValueKind.String && store.GetString() is { Length: > 0 } storeName)
            {
                return await RunHelperAsync(storeName, registry, cancellationToken).ConfigureAwait(false);
            }
        }
        return null;
    }

    private static IEnumerable<string> Candidates(string registry, string? repository)
    {
        if (repository is not null)
        {
            var parts = repository.Split('/');
            for (int n = parts.Length; n > 0; n--)
            {
                yield return registry + "/" + string.Join('/', parts.Take(n));
            }
        }
        yield return registry;
    }

    /// <summary>Keys of Docker's files may carry a scheme and a path (<c>https://host/v1/</c>).</summary>
    internal static string NormalizeKey(string key)
    {
        int scheme = key.IndexOf("://", StringComparison.Ordinal);
        if (scheme >= 0)
        {
            key = key[(scheme + 3)..];
            int slash = key.IndexOf('/');
            if (slash >= 0)
            {
                key = key[..slash];
            }
        }
        return key.TrimEnd('/');
    }

    private static RegistryCredential? Decode(string file, string key, JsonElement entry)
    {
        if (entry.ValueKind != JsonValueKind.Object)
        {
            return null;
        }
        string? identity = entry.TryGetProperty("identitytoken", out var it) && it.ValueKind == JsonValueKind.String ? it.GetString() : null;
        if (!entry.TryGetProperty("auth", out var auth) || auth.ValueKind != JsonValueKind.String || auth.GetString() is not { Length: > 0 } encoded)
        {
            return identity is { Length: > 0 } ? new RegistryCredential("<token>", "") { IdentityToken = identity } : null;
        }
        string decoded;
        try
        {
            decoded = Encoding.UTF8.GetString(Convert.FromBase64String(encoded));
        }
        catch (FormatException)
        {
            throw RegistryException.BadFile(file, $"the \"auth\" of \"{key}\" is not base64");
        }
        int colon = decoded.IndexOf(':');
        if (colon <= 0)
        {
            throw RegistryException.BadFile(file, $"the \"auth\" of \"{key}\" is not base64 of USER:PASSWORD");
        }
        return new RegistryCredential(decoded[..colon], decoded[(colon + 1)..]) { IdentityToken = identity };
    }

    /// <summary>Runs <c>docker-credential-HELPER ACTION</c> with the registry on standard input, as the helpers'
    /// protocol asks; null when the helper says it has no credentials for it.</summary>
    private async Task<string?> HelperAsync(string helper, string action, string registry, CancellationToken cancellationToken)
    {
        string program = _helperProgram(helper);
        var info = new ProcessStartInfo(program)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(action);
        Process process;
        try
        {
            process = Process.Start(info) ?? throw new InvalidOperationException("not started");
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            throw RegistryException.BadFile(program, $"the credential helper '{helper}' for {registry} cannot be run: {e.Message}", e);
        }
        using (process)
        {
            await process.StandardInput.WriteAsync(registry).ConfigureAwait(false);
            process.StandardInput.Close();
            var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
            var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
            string output = await stdout.ConfigureAwait(false);
            string error = await stderr.ConfigureAwait(false);
            if (process.ExitCode != 0)
            {
                // The helpers' protocol: "credentials not found" on stdout means there are none, not a failure.
                if (output.Contains("credentials not found", StringComparison.OrdinalIgnoreCase))
                {
                    return null;
                }
                throw RegistryException.BadFile(program, $"the credential helper '{helper}' failed to {action} for {registry} (exit {process.ExitCode}): "
                    + RegistryException.Clip(error.Trim()));
            }
            return output;
        }
    }

    private async Task<RegistryCredential?> RunHelperAsync(string helper, string registry, CancellationToken cancellationToken)
    {
        string program = _helperProgram(helper);
        if (await HelperAsync(helper, "get", registry, cancellationToken).ConfigureAwait(false) is not { } output)
        {
            return null;
        }
        try
        {
            using var doc = JsonDocument.Parse(output);
            string user = doc.RootElement.GetProperty("Username").GetString() ?? "";
            string secret = doc.RootElement.GetProperty("Secret").GetString() ?? "";
            return user == "<token>" ? new RegistryCredential(user, "") { IdentityToken = secret } : new RegistryCredential(user, secret);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw RegistryException.BadFile(program, $"the credential helper '{helper}' answered for {registry} with no Username and Secret");
        }
    }

    /// <summary>Checks the credential against the registry (an authenticated <c>GET /v2/</c>), then stores it.</summary>
    public async Task LoginAsync(string registry, RegistryCredential credential, RegistryClientOptions options, CancellationToken cancellationToken = default)
    {
        using (var client = new RegistryClient(registry, options with { Credentials = (_, _, _) => Task.FromResult<RegistryCredential?>(credential) }))
        {
            await client.CheckCredentialsAsync(cancellationToken).ConfigureAwait(false);
        }
        Store(registry, credential);
    }

    /// <summary>Forgets the registry's credentials: erased from the credential helper a file configures for it
    /// (<c>credHelpers</c>, else <c>credsStore</c>), and its entry removed from <see cref="WriteFile"/>. Returns where
    /// they were removed from (a file's path, <c>credential helper NAME</c>); empty when nothing knew the registry.</summary>
    public async Task<IReadOnlyList<string>> LogoutAsync(string registry, CancellationToken cancellationToken = default)
    {
        var removed = new List<string>();
        if (HelperFor(registry) is { } helper
            && await HelperAsync(helper, "erase", registry, cancellationToken).ConfigureAwait(false) is not null)
        {
            removed.Add($"credential helper {helper}");
        }
        if (Remove(registry))
        {
            removed.Add(WriteFile);
        }
        return removed;
    }

    /// <summary>The helper the files name for the registry: the first <c>credHelpers</c> entry for it, else the
    /// first <c>credsStore</c>, the order <see cref="GetAsync"/> consults them in.</summary>
    private string? HelperFor(string registry)
    {
        string? store = null;
        foreach (var file in Files.Where(File.Exists))
        {
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllBytes(file));
                var root = doc.RootElement;
                if (root.ValueKind != JsonValueKind.Object)
                {
                    continue;
                }
                if (root.TryGetProperty("credHelpers", out var helpers) && helpers.ValueKind == JsonValueKind.Object
                    && helpers.TryGetProperty(registry, out var helper) && helper.GetString() is { Length: > 0 } name)
                {
                    return name;
                }
                if (store is null && root.TryGetProperty("credsStore", out var s) && s.ValueKind == JsonValueKind.String && s.GetString() is { Length: > 0 } storeName)
                {
                    store = storeName;
                }
            }
            catch (JsonException)
            {
                throw RegistryException.BadFile(file, "not JSON: the auth file cannot be read");
            }
        }
        return store;
    }

    /// <summary>Writes the registry's entry into <see cref="WriteFile"/> (mode 0600), keeping every other entry.</summary>
    public void Store(string registry, RegistryCredential credential)
    {
        string auth = Convert.ToBase64String(Encoding.UTF8.GetBytes(credential.Username + ":" + credential.Secret));
        Rewrite((name, value, writer) =>
        {
            if (name != registry)
            {
                writer.WritePropertyName(name);
                value.WriteTo(writer);
            }
            return name == registry;
        }, writer =>
        {
            writer.WriteStartObject(registry);
            writer.WriteString("auth", auth);
            writer.WriteEndObject();
        });
    }

    public bool Remove(string registry)
    {
        if (!File.Exists(WriteFile))
        {
            return false;
        }
        bool found = false;
        Rewrite((name, value, writer) =>
        {
            if (NormalizeKey(name) == registry)
            {
                found = true;
                return true;
            }
            writer.WritePropertyName(name);
            value.WriteTo(writer);
            return false;
        }, null);
        return found;
    }

    /// <summary>Rewrites the file with its <c>auths</c> entries passed through <paramref name="entry"/> and
    /// <paramref name="add"/> appended; every other member as it was. A temp file renamed over it, created 0600,
    /// so a reader never sees half a file and no other user ever can.</summary>
    private void Rewrite(Func<string, JsonElement, Utf8JsonWriter, bool> entry, Action<Utf8JsonWriter>? add)
    {
        JsonDocument? doc = null;
        if (File.Exists(WriteFile))
        {
            try
            {
                doc = JsonDocument.Parse(File.ReadAllBytes(WriteFile));
            }
            catch (JsonException e)
            {
                throw RegistryException.BadFile(WriteFile, $"not JSON (line {e.LineNumber + 1}): not rewriting it");
            }
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw RegistryException.BadFile(WriteFile, "not a JSON object: not rewriting it");
            }
        }
        using (doc)
        {
            string dir = Path.GetDirectoryName(Path.GetFullPath(WriteFile))!;
            if (!Directory.Exists(dir))
            {
                Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
            string temp = WriteFile + ".tmp-" + Environment.ProcessId;
            var mode = new FileStreamOptions
            {
                Mode = FileMode.Create,
                Access = FileAccess.Write,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            };
            try
            {
                using (var stream = new FileStream(temp, mode))
                using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
                {
                    File.SetUnixFileMode(temp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                    writer.WriteStartObject();
                    bool wroteAuths = false;
                    if (doc is not null)
                    {
                        foreach (var member in doc.RootElement.EnumerateObject())
                        {
                            if (member.Name != "auths")
                            {
                                member.WriteTo(writer);
                                continue;
                            }
                            wroteAuths = true;
                            writer.WriteStartObject("auths");
                            if (member.Value.ValueKind == JsonValueKind.Object)
                            {
                                foreach (var a in member.Value.EnumerateObject())
                                {
                                    entry(a.Name, a.Value, writer);
                                }
                            }
                            add?.Invoke(writer);
                            writer.WriteEndObject();
                        }
                    }
                    if (!wroteAuths)
                    {
                        writer.WriteStartObject("auths");
                        add?.Invoke(writer);
                        writer.WriteEndObject();
                    }
                    writer.WriteEndObject();
                }
                File.Move(temp, WriteFile, overwrite: true);
            }
            catch
            {
                File.Delete(temp);
                throw;
            }
        }
    }
}
