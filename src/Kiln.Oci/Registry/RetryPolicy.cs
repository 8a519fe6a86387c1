namespace Kiln.Oci.Registry;

/// <summary>Exponential backoff with jitter, bounded, honouring a server's Retry-After up to the bound. The jitter
/// keeps many clients that failed together from coming back together.</summary>
internal static class RetryPolicy
{
    public static TimeSpan Delay(int failures, TimeSpan baseDelay, TimeSpan maxDelay, TimeSpan? retryAfter, Random random)
    {
        if (retryAfter is { } asked)
        {
            return asked < TimeSpan.Zero ? TimeSpan.Zero : asked > maxDelay ? maxDelay : asked;
        }
        double exp = baseDelay.TotalMilliseconds * Math.Pow(2, Math.Min(failures - 1, 30));
        double capped = Math.Min(exp, maxDelay.TotalMilliseconds);
        return TimeSpan.FromMilliseconds(capped / 2 + random.NextDouble() * capped / 2);
    }

    public static TimeSpan? RetryAfter(HttpResponseMessage response)
    {
        var ra = response.Headers.RetryAfter;
        if (ra?.Delta is { } delta)
        {
            return delta;
        }
        if (ra?.Date is { } date)
        {
            return date - DateTimeOffset.UtcNow;
        }
        return null;
    }

    /// <summary>A failure of the connection rather than an answer: worth another try.</summary>
    public static bool IsTransient(Exception e, CancellationToken callerToken) => e switch
    {
        OperationCanceledException => !callerToken.IsCancellationRequested,
        HttpRequestException { StatusCode: null } => true,
        IOException => true,
        RegistryException r => r.IsTransient,
        _ => false,
    };
}
