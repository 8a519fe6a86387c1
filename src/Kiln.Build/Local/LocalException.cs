namespace Kiln.Build.Local;

/// <summary><c>kiln run</c>, <c>kiln shell</c> and the watch loop: a bad request (<see cref="IsBadInput"/>) or a failure
/// to serve it.</summary>
public sealed class LocalException : Exception
{
    private LocalException(string message, bool badInput, Exception? inner = null)
        : base(message, inner) => IsBadInput = badInput;

    public bool IsBadInput { get; }

    public static LocalException BadInput(string message) => new(message, badInput: true);

    public static LocalException CannotListen(PublishedPort port, Exception inner) =>
        new($"cannot listen on {port.HostEndPoint} for port {port.Port} of the instance: {inner.Message}", badInput: false, inner);
}
