namespace Kiln.Build.Release;

/// <summary>A release could not be done, or was undone: what went wrong and what to do. <see cref="IsBadInput"/>
/// marks the caller's mistakes (an unknown target, a digest that is no image), which exit 2.</summary>
public sealed class ReleaseException : Exception
{
    private ReleaseException(string message, bool badInput = false, Exception? inner = null)
        : base(message, inner) => IsBadInput = badInput;

    public bool IsBadInput { get; }

    /// <summary>Requests that failed on the new set before it was rolled back (a canary), or null.</summary>
    public long? FailedRequests { get; private init; }

    public static ReleaseException UnknownTarget(string target, string file, IEnumerable<string> known) =>
        new($"{file} has no release target named '{target}'" + (known.Any() ? $" (it has: {string.Join(", ", known)})" : " (it has no `release:` section)"), badInput: true);

    public static ReleaseException BadInput(string message) => new(message, badInput: true);

    public static ReleaseException NotPromoted(string target, string digest, string channel, string image) =>
        new($"{target}: {image}@{digest} is not promoted to channel '{channel}'; missing: a promotion of this digest to '{channel}' " +
            $"(kiln promote {image} {channel})");

    public static ReleaseException Busy(string target, string why) =>
        new($"{target}: another kiln is releasing it ({why}); wait for it, or stop it first");

    public static ReleaseException CheckFailed(string target, string digest, string why, Exception? inner = null) =>
        new($"{target}: the new set ({digest}) failed its checks, nothing was switched: {why}", inner: inner);

    public static ReleaseException RolledBack(string target, string why, long failed) =>
        new($"{target}: rolled back: {why}; {failed} request(s) failed on the new set") { FailedRequests = failed };

    public static ReleaseException Balancer(string why, Exception? inner = null) => new("the balancer (HAProxy): " + why, inner: inner);

    public static ReleaseException Network(string why, Exception? inner = null) => new("the instances' network: " + why, inner: inner);

    public static ReleaseException Failed(string why, Exception? inner = null) => new(why, inner: inner);
}
