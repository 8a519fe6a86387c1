namespace Kiln.Build.Promotion;

/// <summary>The one exception type of promotion: a promotion refused (what is missing), or a log that cannot be read or
/// written. <see cref="IsRefusal"/> tells a refusal (exit 1, nothing wrong with kiln) from a bad argument (exit 2).</summary>
public sealed class PromotionException : Exception
{
    private PromotionException(string message, PromotionFailure kind, Exception? inner = null) : base(message, inner) => Kind = kind;

    public PromotionFailure Kind { get; }

    /// <summary>A promotion refused because the image lacks something the channel requires.</summary>
    public bool IsRefusal => Kind == PromotionFailure.Refused;

    public static PromotionException Refused(string image, string channel, IEnumerable<string> missing) =>
        new($"'{image}' cannot be promoted to '{channel}': {string.Join("; ", missing)}", PromotionFailure.Refused);

    /// <summary>A service's pair refused: the pair named digest by digest, then what it lacks.</summary>
    public static PromotionException PairRefused(string service, string channel, string pair, IEnumerable<string> missing) =>
        new($"'{service}' cannot be promoted to '{channel}': pair {pair} lacks: {string.Join("; ", missing)}", PromotionFailure.Refused);

    public static PromotionException UnknownChannel(string channel, IEnumerable<string> known, string file)
    {
        var names = known.ToList();
        return new($"{file} has no channel '{channel}'" + (names.Count == 0
            ? "; add a 'channels:' section"
            : $"; its channels: {string.Join(", ", names)}"), PromotionFailure.BadInput);
    }

    public static PromotionException CorruptLog(string path, int line, string why, Exception? inner = null) =>
        new($"promotion log '{path}' line {line} is unreadable: {why}", PromotionFailure.Corrupt, inner);

    public static PromotionException Io(string action, Exception inner) =>
        new($"{action}: {inner.Message}", PromotionFailure.Io, inner);
}

public enum PromotionFailure
{
    Refused,
    BadInput,
    Corrupt,
    Io,
}
