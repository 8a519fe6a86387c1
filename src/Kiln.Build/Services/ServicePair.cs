using System.Text;
using Kiln.Build.Definition;
using Kiln.Oci;

namespace Kiln.Build.Services;

/// <summary>What a pair test tests and the gate asks about: one image, one package, one configuration. Its digest
/// names the three together; the service's seed and instance-id derive from it.</summary>
public sealed record ServicePair(string Service, string ImageName, Digest Image, Digest Package, Digest Config)
{
    /// <summary>SHA-256 over the three digests, one a line.</summary>
    public Digest Digest => Digest.Compute(Encoding.UTF8.GetBytes($"{Image.Value}\n{Package.Value}\n{Config.Value}\n"));

    /// <summary>How a person reads the pair: service, image and package digests, short.</summary>
    public override string ToString() =>
        $"{Service} (image {ImageName}@{Image.Short}, package {Package.Short}, config {Config.Short}; pair {Digest.Short})";

    public static ServicePair For(ServiceDefinition service, Digest image, Digest package) =>
        new(service.Name, service.Image, image, package, ConfigDigest(service));

    /// <summary>SHA-256 over the service's name and its configuration values as written to <c>/etc/default/NAME</c>,
    /// and the version of the seed Kiln writes around them: what cloud-init does besides installing the package.</summary>
    public static Digest ConfigDigest(ServiceDefinition service)
    {
        var text = new StringBuilder($"kiln-seed {CloudInitSeed.Version}\nservice {service.Name}\n");
        text.Append(CloudInitSeed.DefaultsFile(service));
        return Digest.Compute(Encoding.UTF8.GetBytes(text.ToString()));
    }
}
