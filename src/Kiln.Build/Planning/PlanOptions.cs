using Kiln.Build.Definition;

namespace Kiln.Build.Planning;

/// <summary>What the planner needs from outside: identities of external bases and a way to hash context files.</summary>
public sealed record PlanOptions
{
    /// <summary>The resolved identity of a bootstrap's package sources (mirror, apt sources, release
    /// files...); it goes into the bootstrap's key, so a change of sources gives a new base.</summary>
    public required Func<BootstrapSource, string> BootstrapIdentity { get; init; }

    /// <summary>The identity (e.g. manifest digest) of an imported <c>oci:</c> image; required when
    /// a selected image starts from one.</summary>
    public Func<OciLayoutSource, string>? ImportIdentity { get; init; }

    /// <summary>The identity (the manifest digest) of an image imported from an <c>oci-archive:</c>; required
    /// when a selected image starts from one.</summary>
    public Func<OciArchiveSource, string>? ArchiveIdentity { get; init; }

    /// <summary>The identity (the manifest digest for the build's platform) of a registry image: the one the store has
    /// pinned for the reference, or the one the registry names now; required when a selected image starts from one.</summary>
    public Func<RegistrySource, string>? RegistryIdentity { get; init; }

    public IContextHasher Hasher { get; init; } = new Sha256ContextHasher();

    /// <summary>The digest of an image's test spec; required when a selected image has <c>minimize: {from-tests:
    /// true}</c>, whose minimized form (its children's base) follows what the spec touches. Given by the stage that
    /// reads specs, so planning does not.</summary>
    public Func<TestSource, BootMode, string>? SpecIdentity { get; init; }
}
