using System.Text;
using Kiln.Build.Definition;
using Kiln.Build.Execution;
using Kiln.Build.Exporters.Disk;
using Kiln.Build.Planning;
using Kiln.Build.Sandbox;
using Kiln.Build.Store;
using Kiln.Build.Store.Content;
using Kiln.Build.Testing;
using Kiln.Build.Testing.Spec;
using Kiln.Oci;

namespace Kiln.Build.Minimize;

/// <summary>Makes the minimized form of an image that passed its tests: records what its tests open and execute
/// (from-tests), closes that over what those files need, drops the rest and the profiles' paths, and commits what is
/// left as one layer. The result is cached under the image's digest, the spec's digest and <c>minimize:</c>'s form;
/// the recording under the first two.</summary>
public sealed class Minimizer
{
    /// <summary>Files always kept with from-tests: the bake phase's user and group checks read these from the layers,
    /// and the dynamic loader reads its cache and configuration before any library.</summary>
    private static readonly string[] AlwaysKept = ["/etc/passwd", "/etc/group", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d"];

    private readonly KilnStore _store;
    private readonly IReadOnlyDictionary<string, TestSpec> _specs;
    private readonly TestOptions _testOptions;
    private readonly BuildOptions _buildOptions;
    private readonly IProgress<BuildEvent>? _progress;

    public Minimizer(KilnStore store, IReadOnlyDictionary<string, TestSpec> specs, TestOptions testOptions, BuildOptions buildOptions,
        IProgress<BuildEvent>? progress = null)
    {
        _store = store;
        _specs = specs;
        _testOptions = testOptions;
        _buildOptions = buildOptions;
        _progress = progress;
    }

    public async Task<MinimizedImage> MinimizeAsync(ImagePlan image, Descriptor manifest, ImageState full, CancellationToken ct)
    {
        var definition = image.Definition.Minimize ?? throw new ArgumentException($"image {image.Name} has no minimize:", nameof(image));
        _specs.TryGetValue(image.Name, out var spec);
        var key = Key(manifest.Digest, spec?.Digest, definition);
        var records = new MinimizeRecords(_store);
        if (!_buildOptions.NoCache && _store.StepCache.TryGet(key) is { } cached
            && records.TryReadReport(ContentStore.DescribeImage(cached).Digest) is { } cachedReport)
        {
            return new MinimizedImage(cached, cachedReport) { Cached = true };
        }
        IReadOnlyList<string> recorded = definition.FromTests && spec is not null
            ? await RecordAsync(image, manifest.Digest, spec, full, records, ct).ConfigureAwait(false)
            : [];
        var work = _store.CreateTempDir("minimize");
        try
        {
            var lowers = LayerCommit.LowerDirs(_store, full);
            var merged = new MergedTree(lowers);
            var tree = ImageTree.OfLayers(lowers);
            var keepGlobs = definition.Keep.Select(k => new PathGlob(k)).ToList();
            var profiles = definition.Profiles.Select(Profiles.Get).ToList();
            IReadOnlySet<string>? touched = null;
            KeepSet? links = null;
            if (definition.FromTests)
            {
                var keep = new KeepSet(tree);
                foreach (var path in recorded.Concat(AlwaysKept).Concat(SpecPaths(spec)).Concat(EntryPoint(full)))
                {
                    keep.Add(path);
                }
                foreach (var name in tree.List("/etc/ld.so.conf.d"))
                {
                    keep.Add("/etc/ld.so.conf.d/" + name);
                }
                touched = keep.Paths;
                links = keep;
            }
            bool Keep(string path, Native.FileStatus status) =>
                PathGlob.Any(keepGlobs, path)
                || path.StartsWith("/var/lib/dpkg/", StringComparison.Ordinal) // dpkg's database: what is installed
                || (touched is null ? !Profiles.Removes(profiles, path)
                    : touched.Contains(path)
                    // A link costs nothing, and the recording sees the file it leads to, not the name it was opened by
                    // (/bin/sh for busybox): a link to a kept file or to a directory stays.
                    || (status.IsSymlink && links!.Target(path) is { } target && (touched.Contains(target) || tree.Lookup(target) is { Status.IsDirectory: true })));
            var root = Path.Combine(work, "root");
            Directory.CreateDirectory(root);
            var (kept, dropped) = TreeFilter.Write(merged, root, Keep, dir => Profiles.Prunes(profiles, dir), ct);
            var owners = new PackageOwners(tree);
            var baseState = full with
            {
                Layers = [],
                Config = full.Config with { RootFs = new Oci.RootFs(), History = [] },
            };
            var describe = "kiln minimize" + (definition.Profiles.Count > 0 ? " profiles=" + string.Join(',', definition.Profiles) : "")
                + (definition.FromTests ? " from-tests" : "");
            var state = await LayerCommit.CommitAsync(_store, root, baseState, describe, _buildOptions, ct).ConfigureAwait(false);
            await _store.StepCache.PutAsync(key, state, ct).ConfigureAwait(false);
            var report = new MinimizeReport
            {
                Manifest = ContentStore.DescribeImage(state).Digest.Value,
                Image = image.Name,
                FullManifest = manifest.Digest.Value,
                Profiles = definition.Profiles,
                FromTests = definition.FromTests,
                Keep = definition.Keep,
                BytesBefore = kept.Sum(e => e.Bytes) + dropped.Sum(e => e.Bytes),
                BytesAfter = kept.Sum(e => e.Bytes),
                FilesBefore = kept.Count + dropped.Count,
                FilesAfter = kept.Count,
                LayerBytesBefore = full.Layers.Sum(l => l.Size),
                LayerBytesAfter = state.Layers.Sum(l => l.Size),
                Recorded = recorded.Count,
                Kept = ByPackage(kept, owners),
                Dropped = ByPackage(dropped, owners),
            };
            await records.WriteReportAsync(report, ct).ConfigureAwait(false);
            return new MinimizedImage(state, report);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw MinimizeException.Failed(image.Name, "writing the minimized tree", e);
        }
        finally
        {
            _store.DeleteTempDir(work);
        }
    }

    /// <summary>Adds the retest's outcome to the report: each failing check with the dropped files near it.</summary>
    public async Task<MinimizeReport> RecordRetestAsync(MinimizeReport report, GateResult retest, CancellationToken ct)
    {
        var failures = retest.Phases.SelectMany(p => p.Checks).Where(c => !c.Passed && !c.Skipped)
            .Select(c => new RetestFailure(c.Name, [.. c.Failures.Select(f => $"{f.Matcher}: expected {f.Expected}, got {f.Actual}")],
                DroppedNear(report, c)))
            .ToList();
        var updated = report with { Passed = retest.Passed, Failures = failures };
        await new MinimizeRecords(_store).WriteReportAsync(updated, ct).ConfigureAwait(false);
        return updated;
    }

    /// <summary>Dropped files a failing check points at: those it names, those in a directory it names or of a file it
    /// names, and those whose name is a word of the check (a command's program).</summary>
    internal static IReadOnlyList<string> DroppedNear(MinimizeReport report, CheckReport check)
    {
        var text = check.Subject + "\n" + string.Join('\n', check.Failures.Select(f => f.Actual + "\n" + f.Expected));
        var words = text.Split([' ', '\n', '\t', '"', '\'', ':', ';', '(', ')', ',', '|', '&', '<', '>', '='], StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);
        var paths = words.Where(w => w.StartsWith('/')).Select(KeepSet.Normalise).ToList();
        var dirs = paths.Select(p => p.Length > 1 && p.LastIndexOf('/') > 0 ? p[..p.LastIndexOf('/')] : p).Concat(paths).ToHashSet(StringComparer.Ordinal);
        var near = new List<string>();
        foreach (var file in report.Dropped.SelectMany(p => p.Files))
        {
            var dir = file.LastIndexOf('/') > 0 ? file[..file.LastIndexOf('/')] : "/";
            if (paths.Contains(file) || dirs.Contains(dir) || words.Contains(Path.GetFileName(file)))
            {
                near.Add(file);
            }
        }
        // Named files first: they are the likeliest cause.
        return [.. near.OrderBy(f => paths.Contains(f) ? 0 : 1).ThenBy(f => f, StringComparer.Ordinal).Take(50)];
    }

    private async Task<IReadOnlyList<string>> RecordAsync(ImagePlan image, Digest manifest, TestSpec spec, ImageState full, MinimizeRecords records,
        CancellationToken ct)
    {
        var key = Hash($"recording\n{manifest.Value}\n{spec.Digest.Value}\n");
        if (records.TryReadRecording(key) is { } stored)
        {
            return stored.Paths;
        }
        using var recorder = AccessRecorder.Start();
        var tester = new ImageTester(_store, _testOptions with { UseCache = false, Recorder = recorder, Phase = null, RemoteCache = null });
        GateResult result;
        try
        {
            result = await tester.TestAsync(image.Name, spec, image.Definition.Boot, manifest, full, ct).ConfigureAwait(false);
        }
        finally
        {
            await tester.WhenIdleAsync().ConfigureAwait(false);
        }
        var paths = recorder.Stop();
        if (!result.Passed)
        {
            var failed = result.Phases.SelectMany(p => p.Checks).First(c => !c.Passed);
            throw MinimizeException.RecordingFailed(image.Name, failed.Name);
        }
        await records.WriteRecordingAsync(key, new AccessRecording(manifest.Value, spec.Digest.Value, paths), ct).ConfigureAwait(false);
        return paths;
    }

    /// <summary>The paths of the spec's file checks: the bake phase reads them from the layers, which nothing records.</summary>
    /// <summary>Also the shell, for specs with command checks: the tester reads it from the layers to decide whether a
    /// command of plain words may run without it, so a recording of such a command never opens it, yet the retest needs it.</summary>
    private static IEnumerable<string> SpecPaths(TestSpec? spec) =>
        (spec?.Checks.OfType<FileCheck>().Where(c => c.Exists).Select(c => c.Subject) ?? [])
            .Concat(spec?.Checks.OfType<CommandCheck>().Any() == true ? ["/bin/sh"] : []);

    private static IEnumerable<string> EntryPoint(ImageState state)
    {
        var argv = (state.Config.Config?.Entrypoint ?? []).Concat(state.Config.Config?.Cmd ?? []).Take(1);
        return argv.Where(a => a.StartsWith('/'));
    }

    private static IReadOnlyList<PackageFiles> ByPackage(List<TreeFilter.Entry> entries, PackageOwners owners) =>
        [.. entries.GroupBy(e => owners.Owner(e.Path))
            .Select(g => new PackageFiles(g.Key, g.Sum(e => e.Bytes), [.. g.Select(e => e.Path).Order(StringComparer.Ordinal)]))
            .OrderBy(p => p.Package, StringComparer.Ordinal)];

    /// <summary>The key of a minimized image: the full image, the spec and what <c>minimize:</c> asks. The version
    /// changes with what Kiln keeps, so that a kept set of an older rule is not reused.</summary>
    public static string Key(Digest manifest, Digest? spec, MinimizeDefinition definition) =>
        Hash($"minimize v2\n{manifest.Value}\n{spec?.Value}\nprofiles={string.Join(',', definition.Profiles)}\nfrom-tests={definition.FromTests}\n"
            + $"keep={string.Join('\n', definition.Keep)}\n");

    private static string Hash(string text) => Convert.ToHexStringLower(Sha256Hasher.HashData(Encoding.UTF8.GetBytes(text)));
}

/// <summary>A minimized image and its report (without the retest's outcome when just made).</summary>
public sealed record MinimizedImage(ImageState State, MinimizeReport Report)
{
    /// <summary>Found in the store: nothing was recorded or written.</summary>
    public bool Cached { get; init; }
}
