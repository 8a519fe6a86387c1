namespace Kiln.Build.Sandbox;

/// <summary>The sandbox could not be set up or torn down (not: the command inside failed).</summary>
public sealed class SandboxException : Exception
{
    public SandboxException(string message, Exception? inner = null) : base(message, inner) { }

    public static SandboxException ToolMissing(string tool) =>
        new($"'{tool}' is not installed on this host; install util-linux (unshare, setpriv) and coreutils (chroot)");

    public static SandboxException SetupFailed(string detail) =>
        new($"setting up the build sandbox failed: {detail}");
}
