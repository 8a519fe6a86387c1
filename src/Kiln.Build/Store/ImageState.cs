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

    /// <summary>Refuses a state whose layers and rootfs.diff_ids do not pair up one to one.</summary>
    internal void CheckLayersMatchDiffIds()
    {
        if (Config.RootFs.DiffIds.Count != Layers.Count)
        {
            throw StoreException.InvalidImage(
                $"{Layers.Count} layers but {Config.RootFs.DiffIds.Count} rootfs.diff_ids; they must match one to one");
        }
    }
}
