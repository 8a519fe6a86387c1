namespace Kiln.Oci.Image;

/// <summary>A blob's stream that checks what it gives against its descriptor's size and digest itself, and throws
/// instead of ending when they differ: a sink that reads it to the end need not hash the bytes again.</summary>
public interface IVerifiedBlobStream
{
    /// <summary>The blob the bytes are checked against.</summary>
    Descriptor Descriptor { get; }

    /// <summary>True once every byte has been read and the whole matched <see cref="Descriptor"/>.</summary>
    bool Verified { get; }
}
