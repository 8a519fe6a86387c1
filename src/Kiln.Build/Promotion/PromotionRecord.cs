using Kiln.Oci;

namespace Kiln.Build.Promotion;

/// <summary>One line of the promotion log: <see cref="Digest"/> (the image's manifest) was promoted to
/// <see cref="Channel"/> under the name <see cref="Image"/>, at <see cref="Time"/>, by <see cref="Who"/>, on the strength
/// of <see cref="Results"/>.</summary>
public sealed record PromotionRecord
{
    public required Digest Digest { get; init; }

    public required string Image { get; init; }

    public required string Channel { get; init; }

    public required DateTimeOffset Time { get; init; }

    public required string Who { get; init; }

    /// <summary>Whether the channel asked for approval and it was given (<c>--approve</c>).</summary>
    public bool Approved { get; init; }

    /// <summary>The passing test results the promotion rests on, one per required phase.</summary>
    public IReadOnlyList<PromotedResult> Results { get; init; } = [];

    /// <summary>The registry tag moved to the digest (<c>HOST/REPO:CHANNEL</c>), when the promotion moved one.</summary>
    public string? Tag { get; init; }

    /// <summary>Set when a service's pair was promoted (<c>kiln promote SERVICE CHANNEL</c>): <see cref="Digest"/> and
    /// <see cref="Image"/> are then its image, and the record promotes that image only together with this package and
    /// configuration, never the image alone.</summary>
    public PromotedPair? Pair { get; init; }
}

/// <summary>The rest of a promoted pair: the service, its package's digest and its configuration's digest.</summary>
public sealed record PromotedPair(string Service, Digest Package, Digest Config);

/// <summary>A passing result of one phase: <paramref name="Result"/> is the digest of the result JSON (the bytes of
/// <c>kiln/tests/KEY.json</c>, also a blob of the image's test-results referrer), <paramref name="Spec"/> the digest
/// of the spec it was run against.</summary>
public sealed record PromotedResult(string Phase, Digest Result, Digest Spec);
