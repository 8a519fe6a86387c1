namespace Kiln.Oci.Archives;

/// <summary>An archive that cannot be read or written: not a tar, not an image layout, a missing or mismatched
/// blob, an ambiguous image. The message names the archive and what is wrong with it.</summary>
public sealed class ArchiveException : Exception
{
    public ArchiveException(string message, Exception? inner = null) : base(message, inner) { }
}
