using Kiln.Build.Definition;
using Kiln.Build.Sandbox;
using Kiln.Build.Store;
using Kiln.Oci;

namespace Kiln.Build.Services;

/// <summary>A service's package as the store keeps it: the .deb's digest and size, and whether this build changed
/// which package the service names.</summary>
public sealed record PackageResult(string Service, Digest Digest, long Size, bool Changed);

/// <summary>Builds each service's .deb (or takes the .deb file it names) and keeps it in the store as a blob, pinned
/// under <c>service-NAME.deb</c> so that gc keeps it and a pair test finds it.</summary>
public static class ServicePackages
{
    public const string MediaType = "application/vnd.debian.binary-package";

    public static string PinName(string service) => $"service-{service}.deb";

    /// <summary>The package <paramref name="service"/> names in the store, or null before <c>kiln build</c> stored one.</summary>
    public static Digest? Stored(KilnStore store, string service) => store.Pins.TryGet(PinName(service));

    public static async Task<IReadOnlyList<PackageResult>> BuildAllAsync(KilnStore store, KilnFile file, DateTimeOffset epoch, CancellationToken ct = default)
    {
        var results = new List<PackageResult>();
        foreach (var service in file.Services)
        {
            results.Add(await BuildAsync(store, service, epoch, ct).ConfigureAwait(false));
        }
        return results;
    }

    public static async Task<PackageResult> BuildAsync(KilnStore store, ServiceDefinition service, DateTimeOffset epoch, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(service);
        byte[] deb;
        if (service.PackageIsFolder)
        {
            var work = store.CreateTempDir("deb");
            try
            {
                deb = await BuildDebAsync(service.Package, Path.Combine(work, "root"), Path.Combine(work, "out.deb"), epoch, ct).ConfigureAwait(false);
            }
            catch (ServiceException e)
            {
                throw ServiceException.Failed($"service `{service.Name}` ({service.Mark}): {e.Message}", e);
            }
            finally
            {
                store.DeleteTempDir(work);
            }
        }
        else
        {
            deb = await File.ReadAllBytesAsync(service.Package, ct).ConfigureAwait(false);
        }
        var descriptor = await store.Content.WriteBlobAsync(deb, MediaType, ct).ConfigureAwait(false);
        bool changed = Stored(store, service.Name) != descriptor.Digest;
        if (changed)
        {
            await store.Pins.PinAsync(PinName(service.Name), descriptor.Digest, ct).ConfigureAwait(false);
        }
        return new PackageResult(service.Name, descriptor.Digest, descriptor.Size, changed);
    }

    /// <summary>Builds a .deb from <paramref name="folder"/> so that the same folder content gives the same bytes: a
    /// copy whose files and folders all carry the epoch's time, owned by root in the archive (--root-owner-group),
    /// gzip (xz's threads could split blocks differently between machines), dpkg-deb sorting the entries and
    /// clamping times to SOURCE_DATE_EPOCH.</summary>
    internal static async Task<byte[]> BuildDebAsync(string folder, string copy, string output, DateTimeOffset epoch, CancellationToken ct)
    {
        var (cpStatus, cpOutput) = await HostCommand.RunAsync(HostCommand.StartInfo(HostPrograms.Cp.Name, ["-a", "--no-preserve=ownership", folder.TrimEnd('/') + "/.", copy + "/"]), ct)
            .ConfigureAwait(false);
        if (cpStatus != 0)
        {
            throw ServiceException.Failed($"copying the package folder failed: {cpOutput.Trim()}");
        }
        var time = epoch.UtcDateTime;
        foreach (var entry in new DirectoryInfo(copy).EnumerateFileSystemInfos("*", SearchOption.AllDirectories).Append(new DirectoryInfo(copy)))
        {
            // A symlink's own time cannot be set from here; dpkg-deb clamps it to the epoch (below) all the same.
            if (entry.LinkTarget is null)
            {
                entry.LastWriteTimeUtc = time;
            }
        }
        var env = new Dictionary<string, string> { ["SOURCE_DATE_EPOCH"] = epoch.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture) };
        var (status, text) = await HostCommand.RunAsync(
            HostCommand.StartInfo(HostPrograms.DpkgDeb.Name, ["--root-owner-group", "-Zgzip", "-z9", "--build", copy, output], environment: env), ct).ConfigureAwait(false);
        if (status != 0)
        {
            throw ServiceException.Failed($"{HostPrograms.DpkgDeb.Name} could not build the package (exit {status}): {text.Trim()}");
        }
        return await File.ReadAllBytesAsync(output, ct).ConfigureAwait(false);
    }
}
