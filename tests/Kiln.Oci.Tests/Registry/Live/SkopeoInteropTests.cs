using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Kiln.Oci.Registry;

namespace Kiln.Oci.Tests.Registry.Live;

[Trait("Tier", "Slow")] // starts docker-registry and runs skopeo
public sealed class SkopeoInteropTests
{
    private static async Task SkopeoAsync(params string[] args)
    {
        var info = new ProcessStartInfo("skopeo") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }
        using var p = Process.Start(info)!;
        var stderr = p.StandardError.ReadToEndAsync();
        await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, $"skopeo {string.Join(' ', args)} exited {p.ExitCode}: {await stderr}");
    }

    private static void WriteLayout(string dir, TestImage image, string tag)
    {
        Directory.CreateDirectory(Path.Combine(dir, "blobs", "sha256"));
        File.WriteAllText(Path.Combine(dir, "oci-layout"), "{\"imageLayoutVersion\":\"1.0.0\"}");
        foreach (var (d, content) in image.Blobs)
        {
            File.WriteAllBytes(Path.Combine(dir, "blobs", "sha256", d.Digest.Hex), content);
        }
        File.WriteAllBytes(Path.Combine(dir, "blobs", "sha256", image.ManifestDigest.Hex), image.Manifest);
        File.WriteAllText(Path.Combine(dir, "index.json"),
            $"{{\"schemaVersion\":2,\"manifests\":[{{\"mediaType\":\"{MediaTypes.ImageManifest}\",\"digest\":\"{image.ManifestDigest}\",\"size\":{image.Manifest.Length},\"annotations\":{{\"org.opencontainers.image.ref.name\":\"{tag}\"}}}}]}}");
    }

    [Fact]
    public async Task Pulls_what_skopeo_pushed_and_skopeo_copies_what_kiln_pushed_with_every_digest_kept()
    {
        await using var server = await RegistryServer.StartAsync();
        string work = Directory.CreateTempSubdirectory("kiln-skopeo-").FullName;
        try
        {
            using var client = new RegistryClient(server.Host, new RegistryClientOptions { Insecure = true, CertsDirectory = null });

            // skopeo pushes, Kiln pulls.
            var theirs = TestImage.Create(31, 4000, 250_000);
            WriteLayout(Path.Combine(work, "in"), theirs, "v1");
            await SkopeoAsync("copy", "--preserve-digests", "--dest-tls-verify=false", $"oci:{work}/in:v1", $"docker://{server.Host}/from-skopeo:v1");
            await PlainRegistryTests.PullAndCompareAsync(client, "from-skopeo", theirs, "v1");

            // Kiln pushes, skopeo copies into a layout: the same manifest and blobs.
            var ours = TestImage.Create(32, 3000, 120_000);
            await PlainRegistryTests.PushAsync(client, "from-kiln", ours, "v2");
            await SkopeoAsync("copy", "--preserve-digests", "--src-tls-verify=false", $"docker://{server.Host}/from-kiln:v2", $"oci:{work}/out:v2");
            using var index = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(work, "out", "index.json")));
            Assert.Equal(ours.ManifestDigest.Value, index.RootElement.GetProperty("manifests")[0].GetProperty("digest").GetString());
            foreach (var (d, content) in ours.Blobs)
            {
                Assert.Equal(content, File.ReadAllBytes(Path.Combine(work, "out", "blobs", "sha256", d.Digest.Hex)));
            }
            Assert.Equal(ours.Manifest, File.ReadAllBytes(Path.Combine(work, "out", "blobs", "sha256", ours.ManifestDigest.Hex)));
        }
        finally
        {
            Directory.Delete(work, true);
        }
    }
}
