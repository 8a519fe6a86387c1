using System.Globalization;
using System.Text;
using Kiln.Build.Definition;
using Kiln.Build.Sandbox;

namespace Kiln.Build.Services;

/// <summary>A cloud-init NoCloud seed for one pair: <c>user-data</c> (a #cloud-config that writes the service's
/// configuration, then fetches the package from a URL, checks its digest and installs it with dpkg) and
/// <c>meta-data</c> (an instance-id from the pair's digest, so a new pair is a new instance to cloud-init).</summary>
public sealed record CloudInitSeed(string UserData, string MetaData)
{
    /// <summary>The version of what the seed does; part of each pair's config digest.</summary>
    public const int Version = 1;

    /// <summary>The NoCloud seed folder cloud-init reads without any kernel argument.</summary>
    public const string SeedDir = "/var/lib/cloud/seed/nocloud";

    public static string InstanceId(ServicePair pair) => "kiln-" + pair.Digest.Hex[..16];

    /// <summary>Where the package is fetched to inside the instance.</summary>
    public static string PackagePath(string service) => $"/var/cache/kiln/{service}.deb";

    public static CloudInitSeed For(ServiceDefinition service, ServicePair pair, Uri packageUrl)
    {
        ArgumentNullException.ThrowIfNull(service);
        ArgumentNullException.ThrowIfNull(pair);
        ArgumentNullException.ThrowIfNull(packageUrl);
        var deb = PackagePath(service.Name);
        // curl retries a refused connection: the server may come up a moment after the instance (kiln test starts it
        // in the instance's network namespace once there is one). The digest check makes the pair the one tested.
        var install = $"mkdir -p /var/cache/kiln && curl -fsS --retry 30 --retry-connrefused --retry-delay 1 -o {deb} {Shell(packageUrl.AbsoluteUri)}"
            + $" && echo {Shell($"{pair.Package.Hex}  {deb}")} | sha256sum -c - && dpkg -i {deb}";
        var user = new StringBuilder();
        user.Append("#cloud-config\n");
        user.Append(CultureInfo.InvariantCulture, $"# kiln seed for service {service.Name}: pair {pair.Digest.Value}\n");
        user.Append(CultureInfo.InvariantCulture, $"# image {pair.ImageName}@{pair.Image.Value}, package {pair.Package.Value}, config {pair.Config.Value}\n");
        user.Append("write_files:\n");
        user.Append(CultureInfo.InvariantCulture, $"  - path: {Quote($"/etc/default/{service.Name}")}\n");
        user.Append("    permissions: \"0644\"\n");
        user.Append(CultureInfo.InvariantCulture, $"    content: {Quote(DefaultsFile(service))}\n");
        user.Append("runcmd:\n");
        user.Append(CultureInfo.InvariantCulture, $"  - [sh, -c, {Quote(install)}]\n");
        var meta = $"instance-id: {InstanceId(pair)}\nlocal-hostname: {service.Name}\n";
        return new CloudInitSeed(user.ToString(), meta);
    }

    /// <summary><c>/etc/default/NAME</c>: one <c>KEY="VALUE"</c> a line, read alike by sh and systemd's EnvironmentFile.</summary>
    public static string DefaultsFile(ServiceDefinition service)
    {
        ArgumentNullException.ThrowIfNull(service);
        var text = new StringBuilder();
        foreach (var (key, value) in service.Config)
        {
            text.Append(key).Append("=\"");
            foreach (var c in value)
            {
                if (c is '\\' or '"' or '$' or '`')
                {
                    text.Append('\\');
                }
                text.Append(c);
            }
            text.Append("\"\n");
        }
        return text.ToString();
    }

    /// <summary>Writes <c>user-data</c> and <c>meta-data</c> into <paramref name="dir"/> (made if missing).</summary>
    public async Task WriteFolderAsync(string dir, CancellationToken ct = default)
    {
        Directory.CreateDirectory(dir);
        await File.WriteAllTextAsync(Path.Combine(dir, "user-data"), UserData, ct).ConfigureAwait(false);
        await File.WriteAllTextAsync(Path.Combine(dir, "meta-data"), MetaData, ct).ConfigureAwait(false);
    }

    /// <summary>Writes an ISO 9660 image labelled <c>cidata</c> holding the two files (with Joliet and Rock Ridge
    /// names), as NoCloud reads from a second drive; written beside <paramref name="path"/> and renamed.</summary>
    public async Task WriteIsoAsync(string path, string workDir, CancellationToken ct = default)
    {
        var folder = Path.Combine(workDir, "cidata");
        await WriteFolderAsync(folder, ct).ConfigureAwait(false);
        var partial = path + ".partial";
        var (status, output) = await HostCommand.RunAsync(HostCommand.StartInfo(HostPrograms.Genisoimage.Name,
            ["-quiet", "-output", partial, "-volid", "cidata", "-joliet", "-rock", Path.Combine(folder, "user-data"), Path.Combine(folder, "meta-data")]), ct).ConfigureAwait(false);
        if (status != 0)
        {
            File.Delete(partial);
            throw ServiceException.Failed($"genisoimage failed (exit {status}): {output.Trim()}");
        }
        File.Move(partial, path, overwrite: true);
    }

    /// <summary>A YAML double-quoted scalar (JSON's escapes are YAML's too).</summary>
    internal static string Quote(string text)
    {
        var s = new StringBuilder("\"");
        foreach (var c in text)
        {
            switch (c)
            {
                case '"': s.Append("\\\""); break;
                case '\\': s.Append("\\\\"); break;
                case '\n': s.Append("\\n"); break;
                case '\t': s.Append("\\t"); break;
                case < ' ': s.Append(CultureInfo.InvariantCulture, $"\\x{(int)c:x2}"); break;
                default: s.Append(c); break;
            }
        }
        return s.Append('"').ToString();
    }

    /// <summary>A POSIX shell single-quoted word.</summary>
    internal static string Shell(string word) => "'" + word.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
