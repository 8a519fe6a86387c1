using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using Kiln.Build.Store;
using Kiln.Oci;

namespace Kiln.Build.Tests.Store;

/// <summary>A store in its own temp root, removed on dispose.</summary>
internal sealed class TestStore : IDisposable
{
    public TestStore()
    {
        Root = Path.Combine(Path.GetTempPath(), "kiln-store-test-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)));
        Store = KilnStore.Open(Root);
    }

    public string Root { get; }
    public KilnStore Store { get; private set; }

    public string IngestDir => Path.Combine(Root, "kiln", "ingest");
    public string TmpDir => Path.Combine(Root, "kiln", "tmp");
    public string ScratchDir => Path.Combine(Root, "kiln", "scratch");

    public KilnStore Reopen()
    {
        Store.Dispose();
        Store = KilnStore.Open(Root);
        return Store;
    }

    /// <summary>Writes a one-file gzip layer, its snapshot, and returns the resulting state on top of <paramref name="parent"/>.</summary>
    public async Task<ImageState> AddLayerAsync(ImageState parent, string fileName, string content)
    {
        var tar = new MemoryStream();
        using (var writer = new TarWriter(tar, TarEntryFormat.Pax, leaveOpen: true))
        {
            var entry = new PaxTarEntry(TarEntryType.RegularFile, fileName)
            {
                DataStream = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(content)),
                Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
                ModificationTime = DateTimeOffset.UnixEpoch,
            };
            writer.WriteEntry(entry);
        }
        var tarBytes = tar.ToArray();
        var diffId = Digest.Compute(tarBytes);
        var gz = new MemoryStream();
        using (var z = new GZipStream(gz, CompressionLevel.Fastest, leaveOpen: true))
        {
            z.Write(tarBytes);
        }
        var layer = await Store.Content.WriteBlobAsync(gz.ToArray(), MediaTypes.LayerGzip);

        var prepared = Store.CreateTempDir("snapshot");
        File.WriteAllText(Path.Combine(prepared, fileName), content);
        Store.Snapshots.CommitSnapshot(prepared, diffId);

        return new ImageState
        {
            Layers = [.. parent.Layers, layer],
            Config = parent.Config with
            {
                RootFs = new RootFs { DiffIds = [.. parent.Config.RootFs.DiffIds, diffId] },
                History = [.. parent.Config.History, new HistoryEntry { Created = "1970-01-01T00:00:00Z", CreatedBy = "add " + fileName }],
            },
        };
    }

    public static ImageState Empty => ImageState.Empty("1970-01-01T00:00:00Z");

    public static (int ExitCode, string Output) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    public void Dispose()
    {
        Store.Dispose();
        if (Directory.Exists(Root))
        {
            StoreFs.DeleteTree(Root);
        }
    }
}
