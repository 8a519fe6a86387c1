namespace Kiln.Build.Services;

/// <summary>A service package, seed or pair could not be made or checked. <see cref="IsBadInput"/>: the input is at
/// fault (exit 2: a package not built yet, an image not in the store); otherwise the work failed (exit 1).</summary>
public sealed class ServiceException : Exception
{
    private ServiceException(string message, bool badInput, Exception? inner = null) : base(message, inner) => IsBadInput = badInput;

    public bool IsBadInput { get; }

    public static ServiceException BadInput(string message) => new(message, true);

    public static ServiceException Failed(string message, Exception? inner = null) => new(message, false, inner);
}
