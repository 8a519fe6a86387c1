using Kiln.Build.Definition;
using Kiln.Build.Services;
using Kiln.Oci;

namespace Kiln.Build.Tests.Services;

public sealed class CloudInitSeedTests
{
    private static readonly ServiceDefinition Hello = new()
    {
        Name = "hello",
        Mark = new SourceMark("kiln.yaml", 1, 1),
        Image = "runner",
        Package = "/ctx/hello",
        Config = [KeyValuePair.Create("GREETING", "say \"hi\" for $5"), KeyValuePair.Create("PORT", "8081")],
    };

    private static Digest D(char c) => Digest.Parse("sha256:" + new string(c, 64));

    [Fact]
    public void User_data_writes_the_config_then_fetches_checks_and_installs_the_package()
    {
        var pair = ServicePair.For(Hello, D('a'), D('b'));
        var seed = CloudInitSeed.For(Hello, pair, new Uri("http://10.0.0.1:8000/hello.deb"));

        Assert.StartsWith("#cloud-config\n", seed.UserData, StringComparison.Ordinal);
        Assert.Contains("  - path: \"/etc/default/hello\"\n", seed.UserData, StringComparison.Ordinal);
        Assert.Contains("content: \"GREETING=\\\"say \\\\\\\"hi\\\\\\\" for \\\\$5\\\"\\nPORT=\\\"8081\\\"\\n\"", seed.UserData, StringComparison.Ordinal);
        Assert.Contains("'http://10.0.0.1:8000/hello.deb'", seed.UserData, StringComparison.Ordinal);
        Assert.Contains($"echo '{new string('b', 64)}  /var/cache/kiln/hello.deb' | sha256sum -c - && dpkg -i /var/cache/kiln/hello.deb", seed.UserData, StringComparison.Ordinal);
        Assert.Equal($"instance-id: kiln-{pair.Digest.Hex[..16]}\nlocal-hostname: hello\n", seed.MetaData);
    }

    [Fact]
    public void The_pair_changes_with_each_of_image_package_and_config()
    {
        var pair = ServicePair.For(Hello, D('a'), D('b'));

        Assert.Equal(pair.Digest, ServicePair.For(Hello, D('a'), D('b')).Digest);
        Assert.NotEqual(pair.Digest, ServicePair.For(Hello, D('c'), D('b')).Digest);
        Assert.NotEqual(pair.Digest, ServicePair.For(Hello, D('a'), D('c')).Digest);
        Assert.NotEqual(pair.Digest, ServicePair.For(Hello with { Config = [KeyValuePair.Create("PORT", "8082")] }, D('a'), D('b')).Digest);
    }

    [Fact]
    public void A_pair_record_round_trips_through_its_json()
    {
        var record = new PairRecord
        {
            Pair = ServicePair.For(Hello, D('a'), D('b')),
            Phase = "boot",
            Passed = false,
            TestedAt = new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero),
            Duration = TimeSpan.FromMilliseconds(1500),
            ServiceSpec = D('e'),
            Checks = [new Kiln.Build.Execution.CheckReport
            {
                Section = "cloud-init", Subject = "status", Duration = TimeSpan.Zero,
                Failures = [new Kiln.Build.Execution.CheckFailure("status", "done", "error")],
            }],
        };

        var back = PairStore.Parse(PairStore.Serialize(record))!;

        Assert.Equal(record.Pair, back.Pair);
        Assert.Equal(record.TestedAt, back.TestedAt);
        Assert.Equal(record.Duration, back.Duration);
        Assert.Equal(record.ServiceSpec, back.ServiceSpec);
        Assert.False(back.Passed);
        Assert.Equal("error", Assert.Single(Assert.Single(back.Checks).Failures).Actual);
    }
}
