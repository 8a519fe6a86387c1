using System.Diagnostics;
using Kiln.Build.Distribution;
using Kiln.Build.Execution;
using Kiln.Build.Store;
using Kiln.Oci;
using Kiln.Oci.Image;
using Kiln.Oci.Registry;
using Spectre.Console;

namespace Kiln.Cli;

/// <summary><c>kiln push</c>, <c>pull</c>, <c>login</c> and <c>logout</c>: the store and registries.</summary>
internal static class RegistryCommands
{
    private static readonly Dictionary<string, string> Aliases = new() { ["-h"] = "--help", ["-u"] = "--username" };

    public static async Task<int> PushAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        var a = Arguments.Parse(args, "push", ["--insecure", "--json", "--help"], [], Aliases);
        if (a.Has("--help"))
        {
            stdout.WriteLine(Help.Push);
            return ExitCodes.Ok;
        }
        if (a.Positionals.Count != 2)
        {
            throw new UsageException("kiln push: takes IMAGE and REF (see 'kiln push --help')");
        }
        var image = a.Positionals[0];
        var reference = ParseReference("push", a.Positionals[1]);
        if (!Kiln.Build.Store.Names.ImageNames.IsValidTagName(image))
        {
            throw new UsageException($"kiln push: '{image}' is not an image name");
        }
        var root = Cli.StoreRoot();
        if (!File.Exists(Path.Combine(root, "oci-layout")))
        {
            throw new UsageException($"kiln push: no store at {root} (build or pull an image first)");
        }
        using var store = KilnStore.Open(root);
        using var storeLock = store.AcquireLock(exclusive: false, ct);
        var manifest = store.Names.TryGetTag(image) ?? throw new UsageException($"kiln push: no image named '{image}' in {root} (see 'kiln images')");
        if (reference.Digest is { } digest && digest != manifest.Digest)
        {
            throw new UsageException($"kiln push: '{a.Positionals[1]}' names {digest}, but {image} is {manifest.Digest}");
        }
        // A reference by digest alone pushes without a tag; one with neither gets latest, as every registry client does.
        string? tag = reference.Tag ?? (reference.Digest is null ? "latest" : null);
        bool json = a.Has("--json");
        using var client = RegistryAccess.Open(reference.Registry, a.Has("--insecure"), reference.Registry + "/" + reference.Repository);
        var renderer = new TransferRenderer(json ? stderr : stdout, "pushed");
        var clock = Stopwatch.StartNew();
        var summary = await renderer.RunAsync(TransferRenderer.IsLive(json),
            () => RegistryTransfer.PushAsync(store, manifest, client, reference.Repository, tag, renderer, ct)).ConfigureAwait(false);
        int referrers = await RegistryTransfer.PushReferrersAsync(store, manifest, client, reference.Repository, ct).ConfigureAwait(false);
        if (referrers > 0)
        {
            (json ? stderr : stdout).WriteLine($"pushed {referrers} referrer{(referrers == 1 ? "" : "s")} of {manifest.Digest.Short} (test results, SBOM, build record)");
        }
        Summary(json ? stderr : stdout, json ? stdout : null, "pushed", image, reference, summary, clock.Elapsed);
        return ExitCodes.Ok;
    }

    public static async Task<int> PullAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        var a = Arguments.Parse(args, "pull", ["--insecure", "--json", "--help"], ["--as"], Aliases);
        if (a.Has("--help"))
        {
            stdout.WriteLine(Help.Pull);
            return ExitCodes.Ok;
        }
        if (a.Positionals.Count != 1)
        {
            throw new UsageException("kiln pull: takes one REF (see 'kiln pull --help')");
        }
        var reference = ParseReference("pull", a.Positionals[0]);
        var name = a.Last("--as") ?? a.Positionals[0];
        if (!Kiln.Build.Store.Names.ImageNames.IsValidTagName(name))
        {
            throw new UsageException($"kiln pull: '{name}' is not a valid image name (letters, digits and . _ - : / + @, starting with a letter or digit)");
        }
        if (!Environment.IsPrivilegedProcess)
        {
            throw new UsageException("kiln pull: the store's images are unpacked as they are (owners, device nodes) when first used: run as root");
        }
        bool json = a.Has("--json");
        using var store = KilnStore.Open(Cli.StoreRoot());
        using var storeLock = store.AcquireLock(exclusive: false, ct);
        // registries.conf may move a namespace elsewhere (prefix to location): the image is fetched from there and
        // named as asked, as podman pull does; the entry's insecure flag applies to where it is fetched from.
        var from = RegistryAccess.Locate("pull", reference);
        using var client = RegistryAccess.Open(from.Registry, a.Has("--insecure"), from.Registry + "/" + from.Repository);
        var source = new RegistryImageSource(client, from.Repository);
        var renderer = new TransferRenderer(json ? stderr : stdout, "pulled");
        var clock = Stopwatch.StartNew();
        var (summary, _) = await renderer.RunAsync(TransferRenderer.IsLive(json), async () =>
        {
            var top = await source.ResolveAsync(reference.Reference, ct).ConfigureAwait(false);
            return await ImagePull.PullAsync(store, source, top, name, Platform.Host, renderer, ct).ConfigureAwait(false);
        }).ConfigureAwait(false);
        Summary(json ? stderr : stdout, json ? stdout : null, "pulled", name, reference, summary, clock.Elapsed);
        return ExitCodes.Ok;
    }

    public static async Task<int> LoginAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        var a = Arguments.Parse(args, "login", ["--password-stdin", "--insecure", "--help"], ["--username"], Aliases);
        if (a.Has("--help"))
        {
            stdout.WriteLine(Help.Login);
            return ExitCodes.Ok;
        }
        var host = OneHost("login", a);
        bool terminal = !Console.IsInputRedirected && !Console.IsOutputRedirected;
        var user = a.Last("--username") ?? (terminal ? AnsiConsole.Ask<string>("Username:")
            : throw new UsageException("kiln login: give the user name with -u USER"));
        string password;
        if (a.Has("--password-stdin"))
        {
            password = (await Console.In.ReadToEndAsync(ct).ConfigureAwait(false)).TrimEnd('\r', '\n');
        }
        else if (terminal)
        {
            password = AnsiConsole.Prompt(new TextPrompt<string>("Password:").Secret());
        }
        else
        {
            throw new UsageException("kiln login: standard input is not a terminal: give the password on it with --password-stdin");
        }
        if (password.Length == 0)
        {
            throw new UsageException("kiln login: the password is empty");
        }
        var credentials = RegistryAccess.Credentials();
        await credentials.LoginAsync(host, new RegistryCredential(user, password), RegistryAccess.Options(host, a.Has("--insecure"), null), ct)
            .ConfigureAwait(false);
        stdout.WriteLine($"logged in to {host} as {user} (credentials in {credentials.WriteFile})");
        return ExitCodes.Ok;
    }

    public static async Task<int> LogoutAsync(string[] args, TextWriter stdout, CancellationToken ct)
    {
        var a = Arguments.Parse(args, "logout", ["--help"], [], Aliases);
        if (a.Has("--help"))
        {
            stdout.WriteLine(Help.Logout);
            return ExitCodes.Ok;
        }
        var host = OneHost("logout", a);
        var credentials = RegistryAccess.Credentials();
        var removed = await credentials.LogoutAsync(host, ct).ConfigureAwait(false);
        stdout.WriteLine(removed.Count > 0
            ? $"logged out of {host} (removed from {string.Join(" and ", removed)})"
            : $"not logged in to {host} ({credentials.WriteFile} has no entry for it)");
        return ExitCodes.Ok;
    }

    private static string OneHost(string command, Arguments a)
    {
        if (a.Positionals.Count != 1)
        {
            throw new UsageException($"kiln {command}: takes one HOST[:PORT] (see 'kiln {command} --help')");
        }
        var host = a.Positionals[0];
        // A host is checked as the host part of a reference, so that what login stores is what push and pull look up.
        if (host.Contains('/') || host.Contains('@'))
        {
            throw new UsageException($"kiln {command}: '{host}' is not a registry HOST[:PORT] (no repository or scheme)");
        }
        ParseReference(command, host + "/probe");
        return host;
    }

    private static ImageReference ParseReference(string command, string text)
    {
        try
        {
            return ImageReference.Parse(text);
        }
        catch (RegistryException ex)
        {
            throw new UsageException($"kiln {command}: {ex.Message}");
        }
    }

    private static void Summary(TextWriter text, TextWriter? json, string verb, string image, ImageReference reference,
        ImageCopySummary summary, TimeSpan elapsed)
    {
        double seconds = elapsed.TotalSeconds;
        string where = verb == "pushed" ? $"{image} to {reference}" : $"{reference} as {image}";
        text.WriteLine($"{verb} {where} ({summary.Root.Digest}): {summary.BlobsCopied} blobs, {BuildRenderer.Size(summary.BytesCopied)} "
            + $"in {TransferRenderer.Seconds(seconds)} ({TransferRenderer.Rate(summary.BytesCopied, seconds)}); "
            + $"{summary.BlobsSkipped} skipped as present, {summary.BlobsMounted} mounted");
        json?.WriteLine(JsonOutput.Write(w =>
        {
            w.WriteStartObject();
            w.WriteString("image", image);
            w.WriteString("reference", reference.ToString());
            w.WriteString("digest", summary.Root.Digest.Value);
            w.WriteString("mediaType", summary.Root.MediaType);
            w.WriteNumber("bytes", summary.BytesCopied);
            w.WriteNumber("blobs", summary.BlobsCopied);
            w.WriteNumber("skipped", summary.BlobsSkipped);
            w.WriteNumber("mounted", summary.BlobsMounted);
            w.WriteNumber("manifests", summary.ManifestsWritten);
            w.WriteNumber("seconds", Math.Round(seconds, 3));
            w.WriteEndObject();
        }));
    }
}

/// <summary>How the CLI reaches a registry: credentials from the containers auth files (and helpers), plain HTTP
/// when registries.conf marks the registry insecure or the user said --insecure.</summary>
internal static class RegistryAccess
{
    public static CredentialStore Credentials() => CredentialStore.FromEnvironment(CliEnvironment.Get);

    /// <param name="name">The repository's full name (<c>HOST/REPO</c>) when the client serves one, so that a
    /// registries.conf entry for its namespace applies; else the registry's own entry.</param>
    public static RegistryClientOptions Options(string registry, bool insecure, CredentialStore? credentials, string? name = null) => new()
    {
        Insecure = insecure || Conf().IsInsecure(name ?? registry),
        Credentials = credentials is null ? null : (host, repository, ct) => credentials.GetAsync(host, repository, ct),
    };

    /// <summary>registries.conf, or the file <c>CONTAINERS_REGISTRIES_CONF</c> names instead (with its drop-ins in
    /// FILE.d), as the containers tools read it.</summary>
    public static RegistriesConf Conf() =>
        RegistriesConf.Load(CliEnvironment.Get("CONTAINERS_REGISTRIES_CONF") is { Length: > 0 } file ? file : "/etc/containers/registries.conf");

    /// <summary>The reference registries.conf's entry for it moves fetches to (its prefix replaced by its location): for
    /// kiln pull, a build's <c>from: HOST/REPO</c>, and --cache-from/--cache-to.</summary>
    public static ImageReference Locate(string command, ImageReference reference)
    {
        string name = reference.Registry + "/" + reference.Repository;
        string moved = Conf().Rewrite(name);
        if (moved == name)
        {
            return reference;
        }
        try
        {
            var parsed = ImageReference.Parse(moved);
            return reference with { Registry = parsed.Registry, Repository = parsed.Repository };
        }
        catch (RegistryException e)
        {
            throw new UsageException($"kiln {command}: registries.conf moves {name} to '{moved}', which is not a repository: {e.Message}");
        }
    }

    public static RegistryClient Open(string registry, bool insecure, string? name = null)
    {
        CredentialStore? credentials;
        try
        {
            credentials = Credentials();
        }
        catch (RegistryException)
        {
            // No HOME, no XDG_RUNTIME_DIR, no REGISTRY_AUTH_FILE: no auth file to read, so anonymous.
            credentials = null;
        }
        return new RegistryClient(registry, Options(registry, insecure, credentials, name));
    }
}
