namespace Kiln.Build.Minimize;

/// <summary>Minimizing an image failed: the recording run of its tests, or reading or writing its trees.</summary>
public sealed class MinimizeException : Exception
{
    private MinimizeException(string message, Exception? inner = null) : base(message, inner)
    {
    }

    public static MinimizeException RecordingFailed(string image, string what) =>
        new($"minimizing {image}: the tests failed while their file accesses were recorded ({what}); the image passed them just before, so they may be flaky");

    public static MinimizeException Failed(string image, string what, Exception inner) =>
        new($"minimizing {image}: {what}: {inner.Message}", inner);

    public static MinimizeException NoReport(string image) =>
        new($"the store holds no minimize report for image '{image}' (an image gets one when kiln.yaml gives it `minimize:` and it is built)");
}
