using Kiln.Oci;

namespace Kiln.Build.Release;

/// <summary>What the release gate asks of promotion: whether a digest was promoted to a channel. The promotion log
/// answers it; the release knows nothing else of how promotions are kept.</summary>
public interface IChannelRecords
{
    bool IsPromoted(Digest digest, string channel);
}
