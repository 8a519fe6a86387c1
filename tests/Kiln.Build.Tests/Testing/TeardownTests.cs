using Kiln.Build.Testing;

namespace Kiln.Build.Tests.Testing;

/// <summary>What tests leave running: awaited whole, including what is added while it is awaited.</summary>
public sealed class TeardownTests
{
    [Fact]
    public async Task Waiting_covers_work_added_while_it_waits_and_throws_its_first_error()
    {
        var teardown = new Teardown();
        var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var second = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        teardown.Add(first.Task);
        var idle = teardown.WhenIdleAsync();
        teardown.Add(second.Task);
        first.SetResult();
        await Task.Delay(100);
        Assert.False(idle.IsCompleted, "idle before the work added meanwhile was done");
        second.SetException(new IOException("busy"));
        Assert.Equal("busy", (await Assert.ThrowsAsync<IOException>(() => idle)).Message);
        await teardown.WhenIdleAsync();
    }
}
