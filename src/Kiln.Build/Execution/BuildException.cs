namespace Kiln.Build.Execution;

/// <summary>A build that ran and failed (a step exited non-zero, a base could not be made).</summary>
public sealed class BuildException : Exception
{
    public BuildException(string message, Exception? inner = null) : base(message, inner) { }

    public string? Image { get; init; }
    public IReadOnlyList<string> OutputTail { get; init; } = [];

    public static BuildException StepFailed(string image, int index, string description, int status, IReadOnlyList<string> tail) =>
        new($"{image}: step {index + 1} ({description}) failed with exit status {status}") { Image = image, OutputTail = tail };

    public static BuildException BootstrapFailed(string image, int status, IReadOnlyList<string> tail) =>
        new($"{image}: bootstrap (mmdebstrap) failed with exit status {status}") { Image = image, OutputTail = tail };
}
