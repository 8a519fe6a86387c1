using Kiln.Build.Store.Content;
using Kiln.Build.Store.Steps;

namespace Kiln.Build.Store;

public sealed partial class KilnStore
{
    /// <summary>Does the one-time work of a process's first step cache read and image write (the JSON serializers'
    /// metadata and first runs) ahead of need. A build runs it on another core while it plans: its first cache lookup
    /// took 0.9 ms, the next ones 0.1 ms.</summary>
    public static void Prewarm()
    {
        var state = ImageState.Empty("1970-01-01T00:00:00Z");
        _ = StepEntryJson.Read(StepEntryJson.Write(state));
        _ = ContentStore.DescribeImage(state);
    }
}
