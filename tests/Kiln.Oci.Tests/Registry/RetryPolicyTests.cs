using Kiln.Oci.Registry;

namespace Kiln.Oci.Tests.Registry;

public sealed class RetryPolicyTests
{
    [Fact]
    public void Backoff_doubles_with_jitter_and_stays_under_the_bound()
    {
        var random = new Random(7);
        var b = TimeSpan.FromMilliseconds(100);
        var max = TimeSpan.FromSeconds(2);
        for (int failures = 1; failures < 40; failures++)
        {
            var d = RetryPolicy.Delay(failures, b, max, null, random);
            double nominal = Math.Min(100 * Math.Pow(2, failures - 1), 2000);
            Assert.InRange(d.TotalMilliseconds, nominal / 2, nominal);
        }
    }

    [Fact]
    public void Retry_after_is_honoured_up_to_the_bound()
    {
        var random = new Random(7);
        Assert.Equal(TimeSpan.FromSeconds(3), RetryPolicy.Delay(1, TimeSpan.FromMilliseconds(1), TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(3), random));
        Assert.Equal(TimeSpan.FromSeconds(10), RetryPolicy.Delay(1, TimeSpan.FromMilliseconds(1), TimeSpan.FromSeconds(10), TimeSpan.FromMinutes(5), random));
    }
}
