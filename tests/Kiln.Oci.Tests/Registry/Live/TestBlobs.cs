using System.Text;

namespace Kiln.Oci.Tests.Registry.Live;

/// <summary>A small image to push: random layers of chosen sizes, a config, and the manifest over them.</summary>
public sealed class TestImage
{
    public required IReadOnlyList<(Descriptor Descriptor, byte[] Content)> Blobs { get; init; }

    public required Descriptor Config { get; init; }

    public required byte[] Manifest { get; init; }

    public Digest ManifestDigest => Digest.Compute(Manifest);

    public static TestImage Create(int seed, params int[] layerSizes)
    {
        var random = new Random(seed);
        var blobs = new List<(Descriptor, byte[])>();
        var layers = new List<Descriptor>();
        foreach (int size in layerSizes)
        {
            var bytes = new byte[size];
            random.NextBytes(bytes);
            var d = new Descriptor { MediaType = MediaTypes.LayerGzip, Digest = Digest.Compute(bytes), Size = size };
            layers.Add(d);
            blobs.Add((d, bytes));
        }
        var configBytes = Encoding.UTF8.GetBytes($$"""{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"seed":{{seed}}}""");
        var config = new Descriptor { MediaType = MediaTypes.ImageConfig, Digest = Digest.Compute(configBytes), Size = configBytes.Length };
        blobs.Add((config, configBytes));
        var manifest = OciJson.Serialize(new Manifest { Config = config, Layers = layers });
        return new TestImage { Blobs = blobs, Config = config, Manifest = manifest };
    }
}
