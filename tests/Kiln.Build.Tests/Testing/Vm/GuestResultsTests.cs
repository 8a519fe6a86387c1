using Kiln.Build.Testing.Vm;

namespace Kiln.Build.Tests.Testing.Vm;

public sealed class GuestResultsTests
{
    [Fact]
    public void Reads_a_result_line_with_base64_outputs_noise_before_the_marker_and_a_carriage_return()
    {
        var line = "\u001b[0mjunk KILN-VM-RESULT 3 1 0 aMOpbGxvCg== LQ==\r";
        Assert.Equal(new GuestResult(3, 1, false, "héllo\n", "-"), GuestResults.Result(line));
    }

    [Fact]
    public void A_dash_is_empty_output_and_1_marks_a_timeout()
    {
        var r = GuestResults.Result("KILN-VM-RESULT 0 124 1 - -")!;
        Assert.Equal((124, true, "", ""), (r.ExitCode, r.TimedOut, r.Stdout, r.Stderr));
    }

    [Theory]
    [InlineData("KILN-VM-RESULT 0 0 0 -")]
    [InlineData("KILN-VM-RESULT 0 0 2 - -")]
    [InlineData("KILN-VM-RESULT x 0 0 - -")]
    [InlineData("KILN-VM-RESULT 0 0 0 not*base64 -")]
    [InlineData("KILN-VM-RESULTS 0 0 0 - -")]
    [InlineData("login: KILN-VM-DONE 3")]
    public void Ignores_lines_that_are_not_well_formed_results(string line) => Assert.Null(GuestResults.Result(line));

    [Fact]
    public void Reads_the_ready_state_and_the_done_count()
    {
        Assert.Equal("degraded", GuestResults.Ready("KILN-VM-READY degraded\r"));
        Assert.Null(GuestResults.Ready("KILN-VM-READY"));
        Assert.Equal(7, GuestResults.Done("KILN-VM-DONE 7"));
        Assert.Null(GuestResults.Done("KILN-VM-DONE seven"));
    }
}
