namespace Kiln.Build.Exporters;

/// <summary>An export that could not be written. <see cref="IsBadInput"/> marks a problem with the image or the
/// request (exit 2: e.g. a disk asked of an image without a kernel), as opposed to a failure while writing (exit 1).</summary>
public sealed class ExportException : Exception
{
    public ExportException(string message, bool isBadInput, Exception? inner = null) : base(message, inner) => IsBadInput = isBadInput;

    public bool IsBadInput { get; }

    public static ExportException BadInput(string message) => new(message, true);

    public static ExportException Failed(string message, Exception? inner = null) => new(message, false, inner);
}
