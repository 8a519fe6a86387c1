using Kiln.Build.Promotion;
using Kiln.Oci;

namespace Kiln.Build.Release;

/// <summary>The release gate's answers from the store's promotion log.</summary>
public sealed class PromotedChannels(PromotionLog log) : IChannelRecords
{
    public bool IsPromoted(Digest digest, string channel) => log.IsPromoted(digest, channel);
}
