using System.Text.Json;
using Kiln.Oci;

namespace Kiln.Build.Store;

public sealed partial class KilnStore
{
    /// <summary>Re-hashes every blob and checks every tagged image (manifest, config, layers, sizes, diff_ids,
    /// snapshots: each that exists is a directory; a layer with none is fine while its blob is there). Collects every
    /// problem rather than stopping at the first.</summary>
    public async Task<VerifyReport> VerifyAsync(CancellationToken ct = default)
    {
        var problems = new List<StoreProblem>();
        var corrupt = new Dictionary<Digest, string>();
        int blobs = 0;
        foreach (var (file, name) in Content.ListBlobFiles())
        {
            ct.ThrowIfCancellationRequested();
            if (name is not { } digest)
            {
                problems.Add(new StoreProblem { Kind = StoreProblemKind.StrayFile, Path = file, Detail = "file name is not a sha256 digest" });
                continue;
            }
            blobs++;
            var stream = Content.OpenBlob(digest);
            Digest actual;
            long length;
            await using (stream.ConfigureAwait(false))
            {
                actual = Digest.FromHash(await Sha256Hasher.HashDataAsync(stream, ct).ConfigureAwait(false));
                length = stream.Length;
            }
            if (actual != digest)
            {
                corrupt[digest] = $"content ({length} bytes) hashes to {actual}";
            }
        }

        // Which images reference each blob / snapshot, to name them in each problem.
        var users = new Dictionary<string, SortedSet<string>>(StringComparer.Ordinal);
        var found = new List<(StoreProblemKind Kind, Digest? Digest, string Path, string Detail)>();
        void Use(string key, string image)
        {
            if (!users.TryGetValue(key, out var set))
            {
                users[key] = set = new SortedSet<string>(StringComparer.Ordinal);
            }
            set.Add(image);
        }
        void CheckBlob(Descriptor d, string image, string role)
        {
            Use(d.Digest.Value, image);
            var path = Content.BlobPath(d.Digest);
            var info = new FileInfo(path);
            if (!info.Exists)
            {
                found.Add((StoreProblemKind.MissingBlob, d.Digest, path, $"{role} blob {d.Digest} is missing"));
            }
            else if (info.Length != d.Size)
            {
                found.Add((StoreProblemKind.SizeMismatch, d.Digest, path, $"{role} blob {d.Digest} has {info.Length} bytes, its descriptor says {d.Size}"));
            }
        }

        IReadOnlyList<(string Name, Descriptor Manifest)> tags;
        try
        {
            tags = Names.ListTags();
        }
        catch (StoreException e)
        {
            problems.Add(new StoreProblem { Kind = StoreProblemKind.InvalidDocument, Path = Names.IndexPath, Detail = e.Message });
            tags = [];
        }
        foreach (var (image, desc) in tags)
        {
            ct.ThrowIfCancellationRequested();
            CheckBlob(desc, image, "manifest");
            var manifest = await TryParseBlobAsync(desc.Digest, corrupt, b => OciJson.DeserializeManifest(b), image, "manifest", found, ct).ConfigureAwait(false);
            if (manifest is null)
            {
                continue;
            }
            CheckBlob(manifest.Config, image, "config");
            foreach (var layer in manifest.Layers)
            {
                CheckBlob(layer, image, "layer");
            }
            var config = await TryParseBlobAsync(manifest.Config.Digest, corrupt, b => OciJson.DeserializeConfig(b), image, "config", found, ct).ConfigureAwait(false);
            if (config is null)
            {
                continue;
            }
            if (config.RootFs.DiffIds.Count != manifest.Layers.Count)
            {
                found.Add((StoreProblemKind.DiffIdCountMismatch, desc.Digest, Content.BlobPath(manifest.Config.Digest),
                    $"image has {manifest.Layers.Count} layers but {config.RootFs.DiffIds.Count} diff_ids"));
                Use(desc.Digest.Value, image);
            }
            for (int i = 0; i < config.RootFs.DiffIds.Count; i++)
            {
                var diffId = config.RootFs.DiffIds[i];
                Use("snapshot:" + diffId.Value, image);
                if (Snapshots.HasSnapshot(diffId))
                {
                    continue;
                }
                // No snapshot is fine while the layer's blob is there (checked above): a pulled or imported layer is
                // extracted on first use. Something else in its place is not.
                var path = Snapshots.SnapshotPath(diffId);
                bool blobThere = i < manifest.Layers.Count && Content.HasBlob(manifest.Layers[i].Digest);
                if (Path.Exists(path) || !blobThere)
                {
                    found.Add((StoreProblemKind.MissingSnapshot, diffId, path,
                        Path.Exists(path) ? $"snapshot of layer {diffId} is not a directory" : $"snapshot of layer {diffId} is missing, and so is its blob"));
                }
            }
        }

        // Artifacts referring to images (test results, SBOMs, build records): their manifests and documents must be whole.
        IReadOnlyList<Descriptor> referrers;
        try
        {
            referrers = Names.ListUntagged();
        }
        catch (StoreException)
        {
            referrers = []; // reported above with the tags
        }
        foreach (var desc in referrers)
        {
            ct.ThrowIfCancellationRequested();
            var what = "referrer " + desc.Digest.Short;
            CheckBlob(desc, what, "manifest");
            var manifest = await TryParseBlobAsync(desc.Digest, corrupt, b => OciJson.DeserializeManifest(b), what, "manifest", found, ct).ConfigureAwait(false);
            if (manifest is null)
            {
                continue;
            }
            CheckBlob(manifest.Config, what, "config");
            foreach (var layer in manifest.Layers)
            {
                CheckBlob(layer, what, "document");
            }
        }

        foreach (var (digest, detail) in corrupt.OrderBy(p => p.Key.Value, StringComparer.Ordinal))
        {
            found.Add((StoreProblemKind.CorruptBlob, digest, Content.BlobPath(digest), $"blob {digest}: {detail}"));
        }
        foreach (var f in found.Distinct())
        {
            var key = f.Kind == StoreProblemKind.MissingSnapshot ? "snapshot:" + f.Digest!.Value.Value : f.Digest?.Value ?? "";
            problems.Add(new StoreProblem
            {
                Kind = f.Kind,
                Digest = f.Digest,
                Path = f.Path,
                Detail = f.Detail,
                AffectedImages = users.TryGetValue(key, out var set) ? set.ToList() : [],
            });
        }
        return new VerifyReport { Problems = problems, BlobsChecked = blobs, ImagesChecked = tags.Count };
    }

    private async Task<T?> TryParseBlobAsync<T>(Digest digest, Dictionary<Digest, string> corrupt, Func<byte[], T> parse,
        string image, string role, List<(StoreProblemKind, Digest?, string, string)> found, CancellationToken ct)
        where T : class
    {
        if (corrupt.ContainsKey(digest) || !Content.HasBlob(digest))
        {
            return null; // already reported
        }
        try
        {
            return parse(await File.ReadAllBytesAsync(Content.BlobPath(digest), ct).ConfigureAwait(false));
        }
        catch (JsonException e)
        {
            found.Add((StoreProblemKind.InvalidDocument, digest, Content.BlobPath(digest), $"{role} of {image} is not valid: {e.Message}"));
            return null;
        }
    }
}
