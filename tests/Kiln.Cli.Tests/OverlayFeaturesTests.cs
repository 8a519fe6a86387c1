using System.Security.Cryptography;
using System.Text;

namespace Kiln.Cli.Tests;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class KernelOverlayDefaults
{
    public const string Name = "kernel overlay defaults";
}

/// <summary>Kiln's overlays fix redirect_dir, metacopy and index off, whatever the kernel's defaults. The test turns
/// the kernel's defaults for new overlay mounts on for the length of one build (nothing else runs meanwhile: its
/// collection is not parallel) and puts them back.</summary>
[Collection(KernelOverlayDefaults.Name)]
public sealed class OverlayFeaturesTests : IDisposable
{
    private const string Parameters = "/sys/module/overlay/parameters";
    private readonly TempDir _store = new("kiln-store");

    public void Dispose() => _store.Dispose();

    [Fact]
    public void A_renamed_lower_dir_and_a_chmodded_lower_file_keep_their_content_where_the_kernel_defaults_to_redirect_dir_and_metacopy()
    {
        using var ctx = new TinyContext("images:\n  tiny:\n    from: scratch\n    steps:\n" + TinyContext.RootStep +
            "      - run: mv /etc/conf.d /etc/renamed.d && chmod 600 /etc/data\n");
        ctx.Write("rootfs/etc/conf.d/a", "in a lower dir\n");
        ctx.Write("rootfs/etc/data", "in a lower file\n");
        var saved = new Dictionary<string, string>();
        KilnProcess.Result r;
        try
        {
            foreach (var name in new[] { "redirect_dir", "metacopy" })
            {
                var path = Path.Combine(Parameters, name);
                Assert.True(File.Exists(path), $"{path} is missing: this kernel's overlay has no such default to turn on");
                saved[path] = File.ReadAllText(path).Trim();
                File.WriteAllText(path, "Y");
            }
            r = KilnProcess.Run(_store.Path, "build", ctx.Path);
        }
        finally
        {
            foreach (var (path, value) in saved)
            {
                File.WriteAllText(path, value);
            }
        }

        Assert.True(r.ExitCode == 0, r.All);
        var layers = StoreReader.LayerDigests(_store.Path, "tiny");
        Assert.Contains("etc/renamed.d/a", StoreReader.LayerEntries(_store.Path, layers[1]));
        var tree = TreeListing.OfImage(_store.Path, "tiny");
        string Hash(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
        Assert.Contains(tree, l => l.StartsWith("etc/renamed.d/a\t", StringComparison.Ordinal) && l.EndsWith(Hash("in a lower dir\n"), StringComparison.Ordinal));
        Assert.Contains(tree, l => l.StartsWith("etc/data\tf\t600\t", StringComparison.Ordinal) && l.EndsWith(Hash("in a lower file\n"), StringComparison.Ordinal));
        Leftovers.AssertNone(_store.Path);
    }
}
