using Kiln.Oci;

namespace Kiln.Build.Store;

/// <summary>The state of an image after a step: its layers (blob descriptors, in order) and its config
/// (whose rootfs.diff_ids match the layers and whose history has an entry per step).</summary>
public sealed record ImageState
{
    public required IReadOnlyList<Descriptor> Layers { get; init; }
    public required ImageConfig Config { get; init; }

    public static ImageState Empty(string created) => new()
    {
        Layers = [],
        Config = new ImageConfig { Created = created },
    };
}
