using Kiln.Build.Execution;

namespace Kiln.Build.Tests.Execution;

public class ScratchSpaceTests
{
    private const long GiB = 1L << 30;

    [Fact]
    public void A_percentage_is_of_the_ram_and_at_most_half_of_what_is_free()
    {
        Assert.Equal(12 * GiB, ScratchSpace.Bytes("50%", new MemoryFacts(24 * GiB, 30 * GiB, null, null)));
        Assert.Equal(5 * GiB, ScratchSpace.Bytes("50%", new MemoryFacts(24 * GiB, 10 * GiB, null, null)));
        Assert.Equal(6 * GiB, ScratchSpace.Bytes("25%", new MemoryFacts(24 * GiB, 24 * GiB, null, null)));
    }

    [Fact]
    public void A_cgroup_limit_below_the_ram_is_the_basis_and_its_headroom_what_is_free()
    {
        // 4 GiB limit, 3 GiB of it used: 1 GiB free, a tmpfs of half that.
        Assert.Equal(GiB / 2, ScratchSpace.Bytes("50%", new MemoryFacts(24 * GiB, 20 * GiB, 4 * GiB, 3 * GiB)));
        // 4 GiB limit, little used: half the limit.
        Assert.Equal(2 * GiB, ScratchSpace.Bytes("50%", new MemoryFacts(24 * GiB, 20 * GiB, 4 * GiB, 0)));
        // An "unlimited" v1 limit changes nothing.
        Assert.Equal(12 * GiB, ScratchSpace.Bytes("50%", new MemoryFacts(24 * GiB, 24 * GiB, long.MaxValue / 4096 * 4096, GiB)));
    }

    [Fact]
    public void Sizes_in_bytes_k_m_and_g_are_taken_as_given_up_to_half_of_what_is_free()
    {
        var plenty = new MemoryFacts(24 * GiB, 20 * GiB, null, null);
        Assert.Equal(1L << 20, ScratchSpace.Bytes("1m", plenty));
        Assert.Equal(8L << 10, ScratchSpace.Bytes("8K", plenty));
        Assert.Equal(4096, ScratchSpace.Bytes("4096", plenty));
        Assert.Equal(10 * GiB, ScratchSpace.Bytes("64g", plenty));
    }

    [Fact]
    public void With_less_than_512_MiB_free_steps_write_to_disk()
    {
        Assert.Null(ScratchSpace.Bytes("50%", new MemoryFacts(0, 0, null, null))); // /proc/meminfo unreadable
        Assert.Null(ScratchSpace.Bytes("50%", new MemoryFacts(24 * GiB, 500L << 20, null, null)));
        Assert.Null(ScratchSpace.Bytes("1m", new MemoryFacts(24 * GiB, 20 * GiB, 8 * GiB, 8 * GiB - (100L << 20))));
    }

    [Theory]
    [InlineData("lots")]
    [InlineData("0%")]
    [InlineData("-5m")]
    [InlineData("12x")]
    [InlineData("150%")]
    public void A_bad_size_is_refused_with_its_text(string option)
    {
        var e = Assert.Throws<ArgumentException>(() => ScratchSpace.Bytes(option, new MemoryFacts(24 * GiB, 20 * GiB, null, null)));
        Assert.Contains($"'{option}'", e.Message);
    }

    [Fact]
    public void This_machine_reports_its_ram_and_what_is_free_of_it()
    {
        var facts = ScratchSpace.Read();

        Assert.True(facts.Total > 0);
        Assert.InRange(facts.Available, 1, facts.Total);
        Assert.True(facts.CgroupLimit is null || facts.CgroupUsage is not null);
    }
}
