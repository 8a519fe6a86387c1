using Kiln.Oci;
using Kiln.Build.Definition;
using Kiln.Build.Layers;
using Kiln.Build.Planning;
using Kiln.Build.Sandbox;
using Kiln.Build.Store;

namespace Kiln.Build.Execution;

/// <summary>Runs one step on an image state and returns the next state. One method per step kind.</summary>
internal sealed class StepRunner
{
    // Files that package tools rewrite with the time of day; dropping them from a packages step's layer
    // keeps the layer reproducible (the image keeps the parent's copies).
    private static readonly string[] VolatileFiles =
    [
        "var/log/dpkg.log", "var/log/alternatives.log", "var/log/apt/history.log", "var/log/apt/term.log",
        "var/log/apt/eipp.log.xz", "var/cache/ldconfig/aux-cache", "var/cache/debconf/config.dat-old",
        "var/cache/debconf/templates.dat-old", "var/cache/debconf/passwords.dat-old",
    ];

    private readonly KilnStore _store;
    private readonly BuildOptions _options;
    private readonly KilnFile _file;
    private readonly Action<string> _output;
    private readonly OutputTail _tail = new(30);
    private readonly PhaseClock? _phases;
    private readonly Action<string> _warn;
    private bool _ranUpdate;

    public StepRunner(KilnStore store, BuildOptions options, KilnFile file, Action<string> output, PhaseClock? phases = null, Action<string>? warn = null)
    {
        _warn = warn ?? output;
        _phases = phases;
        _store = store;
        _options = options;
        _file = file;
        _output = output;
    }

    /// <param name="early">Hands the state over as soon as the layer is packed (see <see cref="EarlyLayer"/>).</param>
    public async Task<ImageState> RunAsync(string image, StepPlan step, ImageState state, CancellationToken ct, EarlyLayer? early = null)
    {
        var createdBy = "kiln " + step.Canonical;
        var config = state.Config.Config;
        switch (step.Step)
        {
            case EnvStep env:
                return LayerCommit.AddHistory(state with { Config = state.Config with { Config = ConfigMerge.WithEnv(config, env.Variables) } }, createdBy, _options, emptyLayer: true);
            case WorkdirStep wd:
                return LayerCommit.AddHistory(state with { Config = state.Config with { Config = config with { WorkingDir = wd.Path } } }, createdBy, _options, emptyLayer: true);
            case UserStep user:
                return LayerCommit.AddHistory(state with { Config = state.Config with { Config = config with { User = user.User } } }, createdBy, _options, emptyLayer: true);
        }

        // The step reads the image's files: layers that were pulled or imported are extracted now, on first use.
        await _store.Snapshots.EnsureAsync(state, _options.Extraction, ct).ConfigureAwait(false);
        // Run and package steps write to a tmpfs unless told otherwise; a copy step's few files go straight to disk.
        bool sandboxed = step.Step is RunStep or PackagesStep;
        var (scratch, inMemory) = ScratchSpace.CreateTempDir(_store, "step", sandboxed && !_options.ScratchOnDisk ? _options.MemoryScratchSize : null);
        try
        {
            return await RunInScratchAsync(image, step, state, createdBy, scratch, inMemory, early, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (inMemory && e is BuildException or ScratchFullException && IsFull(scratch))
        {
            var (_, total) = KilnStore.TempSpace(scratch);
            _warn($"step {step.Index + 1} ({step.Description}) filled its {total >> 20} MiB of memory scratch space; running it again on disk (KILN_SCRATCH_SIZE sets the space, --scratch-on-disk skips the first try)");
        }
        finally
        {
            _store.DeleteTempDir(scratch);
        }
        scratch = _store.CreateTempDir("step");
        try
        {
            return await RunInScratchAsync(image, step, state, createdBy, scratch, inMemory: false, early, ct).ConfigureAwait(false);
        }
        finally
        {
            _store.DeleteTempDir(scratch);
        }
    }

    /// <summary>A step's tmpfs is full when less than 1 MiB or 1% of it is left: a failure of the step was then most
    /// likely "No space left on device", and a success may hide a file cut short by a tool that does not check its
    /// writes. Either way the step runs again on disk.</summary>
    private static bool IsFull(string scratch)
    {
        var (free, total) = KilnStore.TempSpace(scratch);
        return free < Math.Max(1L << 20, total / 100);
    }

    private async Task<ImageState> RunInScratchAsync(string image, StepPlan step, ImageState state, string createdBy, string scratch, bool inMemory,
        EarlyLayer? early, CancellationToken ct)
    {
        var upper = Path.Combine(scratch, "upper");
        Directory.CreateDirectory(upper);
        var lowers = LayerCommit.LowerDirs(_store, state);
        Task? twins = null;
        switch (step.Step)
        {
            case RunStep run:
                var secrets = Secrets(image, step, run);
                await RunInSandboxAsync(image, step, state, scratch, upper, lowers, ["/bin/sh", "-c", run.Command],
                    hostNetwork: run.Network == StepNetwork.Host, binds: [.. CacheBinds(run), .. secrets.Binds], extraEnv: [], ct, secrets.Files).ConfigureAwait(false);
                break;
            case PackagesStep packages:
                using (await _store.AcquireAptCacheAsync(ct).ConfigureAwait(false))
                {
                    bool fresh = ListsAreFresh() && !_options.Refresh;
                    var view = fresh && !_options.FullPackageLists ? WritePackageView(lowers, packages, scratch) : null;
                    IReadOnlyList<BindMount> binds = view is null ? AptBinds() : [.. AptBinds(), new BindMount(view, PackageView.InImage, ReadOnly: true)];
                    bool noPreconfigure = DebconfPreconfigure.IsNoOp(lowers, ConfigMerge.StepEnvironment(state.Config.Config, _options.Epoch, []));
                    await RunInSandboxAsync(image, step, state, scratch, upper, lowers, ["/bin/sh", "-c", PackagesScript(packages, fresh, view is not null, noPreconfigure)],
                        hostNetwork: true, binds: binds, extraEnv: [new("DEBIAN_FRONTEND", "noninteractive")], ct,
                        skeletonScripts: [new(PackageTwins.WrapperName, PackageTwins.Wrapper), .. noPreconfigure
                            ? new KeyValuePair<string, string>[] { new(DebconfPreconfigure.ClearFile, DebconfPreconfigure.ClearText) } : []]).ConfigureAwait(false);
                    if (_ranUpdate)
                    {
                        File.WriteAllBytes(ListsMarker, []);
                    }
                }
                // New downloads get their twins while the layer is packed; the next package step installs from them.
                var installed = PackageTwins.InstalledBy(upper);
                twins = Task.Run(() => RefreshTwinsAsync(installed, ct), ct);
                foreach (var f in VolatileFiles)
                {
                    var p = Path.Combine(upper, f);
                    if (File.Exists(p) && new FileInfo(p).LinkTarget is null)
                    {
                        File.Delete(p);
                    }
                }
                UninitialiseMachineId(upper);
                break;
            case CopyStep copy:
                using (_phases?.Measure("copy"))
                {
                    await LayerCopier.CopyAsync(_file.ContextDir, copy.Sources, copy.To, upper, lowers, copy.Uid, copy.Gid, copy.Mode, ct).ConfigureAwait(false);
                }
                break;
            default:
                throw new NotSupportedException($"step kind {step.Step.GetType().Name} is not supported");
        }
        if (inMemory && IsFull(scratch))
        {
            throw new ScratchFullException();
        }
        var committed = await LayerCommit.CommitAsync(_store, upper, state, createdBy, _options, ct, _phases, inMemory, early).ConfigureAwait(false);
        if (twins is not null)
        {
            using (_phases?.Measure("package twins"))
            {
                await twins.ConfigureAwait(false);
            }
        }
        return committed;
    }

    /// <summary>Twins only save time: a failure to make them is a warning, never a failed step.</summary>
    private async Task RefreshTwinsAsync(IReadOnlySet<string> packages, CancellationToken ct)
    {
        try
        {
            await PackageTwins.RefreshAsync(_store.AptArchivesDir, _store.AptTwinsDir, packages, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            _warn($"warning: could not make uncompressed copies of the cached packages ({e.Message}); package steps unpack the downloads");
        }
    }

    private async Task RunInSandboxAsync(string image, StepPlan step, ImageState state, string scratch, string upper, IReadOnlyList<string> lowers,
        IReadOnlyList<string> command, bool hostNetwork, IReadOnlyList<BindMount> binds, IReadOnlyList<KeyValuePair<string, string>> extraEnv, CancellationToken ct,
        IReadOnlyList<KeyValuePair<string, string>>? secretFiles = null, IReadOnlyList<KeyValuePair<string, string>>? skeletonScripts = null)
    {
        var config = state.Config.Config;
        var workdir = config.WorkingDir is { Length: > 0 } wd ? wd : "/";
        CheckWorkingDirectory(image, step, workdir, lowers);
        var spec = new SandboxSpec
        {
            LowerDirsTopFirst = lowers,
            UpperDir = upper,
            ScratchDir = Path.Combine(scratch, "sandbox"),
            Command = command,
            Environment = ConfigMerge.StepEnvironment(config, _options.Epoch, extraEnv),
            WorkingDirectory = workdir,
            User = step.Step is PackagesStep ? null : config.User,
            HostNetwork = hostNetwork,
            Binds = binds,
            SecretFiles = secretFiles ?? [],
            SkeletonScripts = skeletonScripts ?? [],
        };
        int status;
        using (_phases?.Measure("sandbox"))
        {
            status = await Sandbox.Sandbox.RunAsync(spec, Line, ct).ConfigureAwait(false);
        }
        if (status != 0)
        {
            if (_options.OnStepFailed is { } debug)
            {
                // The tree as the step left it, while it still exists: the caller may open a shell on it (kiln build --debug).
                await debug(new FailedStep
                {
                    Image = image,
                    Number = step.Index + 1,
                    Description = step.Description,
                    ExitStatus = status,
                    UpperDir = upper,
                    LowerDirsTopFirst = lowers,
                    Environment = spec.Environment,
                    WorkingDirectory = workdir,
                    User = spec.User,
                    HostNetwork = hostNetwork,
                    Binds = [.. binds.Where(b => !b.ImagePath.StartsWith(SandboxSpec.SecretsDir + "/", StringComparison.Ordinal)).Select(b => b with { ReadOnly = true })],
                }, ct).ConfigureAwait(false);
            }
            throw BuildException.StepFailed(image, step.Index, step.Description, status, _tail.Lines);
        }
    }

    /// <summary>The sandbox mounts its own /proc, /sys and /dev; a working directory there (such as
    /// /proc/self/fd/N, an open descriptor's directory) could lead outside the root, so it is refused, also when
    /// the image reaches it through a symlink.</summary>
    private static void CheckWorkingDirectory(string image, StepPlan step, string workdir, IReadOnlyList<string> lowers)
    {
        string resolved;
        try
        {
            resolved = SafePath.Resolve(lowers, workdir);
        }
        catch (LayerException ex)
        {
            throw new BuildException($"{image}: step {step.Index + 1} ({step.Description}): working directory '{workdir}': {ex.Message}", ex) { Image = image };
        }
        foreach (var kernel in new[] { "/proc", "/sys", "/dev" })
        {
            if (resolved == kernel || resolved.StartsWith(kernel + "/", StringComparison.Ordinal))
            {
                throw new BuildException($"{image}: step {step.Index + 1} ({step.Description}): working directory '{workdir}' is under {kernel}, which the sandbox mounts itself; choose a directory of the image") { Image = image };
            }
        }
    }

    /// <summary>systemd's postinst writes a random /etc/machine-id. An image must not carry one — every server
    /// made from it would share it — and a random one makes the layer differ on every build. Leave the file
    /// empty, as Debian's cloud images do: systemd then gives each booted instance its own id. (Not
    /// "uninitialized": that means first boot, whose preset-all left nginx disabled here.)</summary>
    internal static void UninitialiseMachineId(string upper)
    {
        var path = Path.Combine(upper, "etc", "machine-id");
        var info = new FileInfo(path);
        if (!info.Exists || info.LinkTarget is not null || info.Length != 33)
        {
            return;
        }
        var text = File.ReadAllText(path);
        if (text.Length == 33 && text[32] == '\n' && text[..32].All(char.IsAsciiHexDigitLower))
        {
            File.WriteAllBytes(path, []);
        }
    }

    private void Line(string line)
    {
        _tail.Add(line);
        _output(line);
    }

    private string CacheRoot => Path.GetFullPath(Path.Combine(_store.AptArchivesDir, "..", ".."));

    private string ListsMarker => Path.Combine(CacheRoot, "apt", "lists.updated");

    internal const string AptArchivesInImage = "/var/cache/apt/archives";

    /// <summary>apt's source cache in the shared archives dir; apt-get clean and autoclean remove only .deb files
    /// there.</summary>
    internal const string SourceCacheName = "kiln-srcpkgcache.bin";

    private IReadOnlyList<BindMount> AptBinds()
    {
        Directory.CreateDirectory(Path.Combine(_store.AptArchivesDir, "partial"));
        Directory.CreateDirectory(Path.Combine(_store.AptListsDir, "partial"));
        Directory.CreateDirectory(_store.AptTwinsDir);
        return [new BindMount(_store.AptArchivesDir, AptArchivesInImage), new BindMount(_store.AptListsDir, "/var/lib/apt/lists"),
            new BindMount(_store.AptTwinsDir, PackageTwins.InImage, ReadOnly: true)];
    }

    private IReadOnlyList<BindMount> CacheBinds(RunStep run)
    {
        var binds = new List<BindMount>();
        foreach (var dir in run.Cache)
        {
            // One host dir per image path, named by a hash of the path: no path can climb out of the cache root.
            var name = Convert.ToHexStringLower(Sha256Hasher.HashData(System.Text.Encoding.UTF8.GetBytes(dir)))[..24];
            var host = Path.Combine(CacheRoot, "run", name);
            Directory.CreateDirectory(host);
            binds.Add(new BindMount(host, dir));
        }
        return binds;
    }

    /// <summary>The secrets of a run step, for this run only, at /run/secrets/ID: a file secret as a read-only bind
    /// of the file where it is; an environment secret as a 0400 file in a read-only tmpfs at /run/secrets that only
    /// the sandbox's mount namespace has (its value never touches the host's disk).
    /// Mount points live in the sandbox's skeleton layer or in that tmpfs, so nothing can reach the step's upper
    /// dir.</summary>
    private (IReadOnlyList<BindMount> Binds, IReadOnlyList<KeyValuePair<string, string>> Files) Secrets(string image, StepPlan step, RunStep run)
    {
        var binds = new List<BindMount>();
        var files = new List<KeyValuePair<string, string>>();
        foreach (var secret in run.Secrets)
        {
            if (secret.File is { } file)
            {
                var host = Path.GetFullPath(Path.Combine(_file.ContextDir, file));
                if (!File.Exists(host))
                {
                    throw new BuildException($"{image}: step {step.Index + 1} ({step.Description}): secret '{secret.Id}': no file '{host}'") { Image = image };
                }
                binds.Add(new BindMount(host, SandboxSpec.SecretsDir + "/" + secret.Id, ReadOnly: true));
            }
            else
            {
                var value = _options.SecretEnvironment(secret.Env!)
                    ?? throw new BuildException($"{image}: step {step.Index + 1} ({step.Description}): secret '{secret.Id}': environment variable {secret.Env} is not set") { Image = image };
                files.Add(new(secret.Id, value));
            }
        }
        return (binds, files);
    }

    /// <param name="fresh">The shared lists are recent enough to install from without an update.</param>
    /// <param name="view">Install from the step's <see cref="PackageView"/>; the full lists only after an update.</param>
    /// <param name="noPreconfigure">Leave debconf's preconfigure hook out (<see cref="DebconfPreconfigure"/>).</param>
    private string PackagesScript(PackagesStep packages, bool fresh, bool view, bool noPreconfigure)
    {
        // apt's parse of the package lists (srcpkgcache.bin, ~40 MB) lives in the shared cache beside the downloads,
        // not in the layer: built once per lists update, it saves apt about 0.4 s of parsing in every package step
        // that reads the full lists. apt checks it against the lists, the configuration and the architectures before
        // use, and writes it atomically; package steps take turns on the shared cache. The per-image pkgcache.bin is
        // not kept, and a view's few stanzas are parsed in memory (srcpkgcache empty).
        // No planner log (var/log/apt/eipp.log.xz): it is dropped from the layer anyway, and xz-compressing it cost
        // about 17 ms per install (6 alternating pairs).
        const string Common = "apt-get -q -o Dir::Cache::pkgcache= -o Dir::Log::Planner=/dev/null -o APT::Sandbox::User=root -o Acquire::Retries=3";
        var full = $"{Common} -o Dir::Cache::srcpkgcache={AptArchivesInImage}/{SourceCacheName}";
        // dpkg is the twins' wrapper, given each package by path: apt's default for more than five packages is a
        // dir of links (--recursive), which the wrapper would have to rewrite with a process per link.
        var installArgs = (noPreconfigure ? $"-c /{DebconfPreconfigure.ClearFile} " : "") + "-o Dpkg::Options::=--force-unsafe-io -o Dpkg::Options::=--force-confdef -o Dpkg::Use-Pty=0 " +
            $"-o Dir::Bin::dpkg=/{PackageTwins.WrapperName} -o Dpkg::Install::Recursive::Minimum=1000000 install -y --no-install-recommends " +
            string.Join(' ', packages.Packages.Select(ShellQuote));
        var install = $"{full} {installArgs}";
        var first = view ? $"{Common} -o Dir::State::Lists={PackageView.InImage}/ -o Dir::Cache::srcpkgcache= {installArgs}" : install;
        var update = $"{full} update";
        _ranUpdate = !fresh;
        // With fresh shared lists apt-get update is skipped; if the lists turn out stale (or the view is short of a
        // package), update and install again from the full lists, once.
        return fresh
            ? $"set -e\n{first} || {{ {update} && {install}; }}\n"
            : $"set -e\n{update}\n{install}\n";
    }

    private string PackageIndexPath => Path.Combine(CacheRoot, "apt", "lists.index");

    /// <summary>Writes the step's <see cref="PackageView"/> into its scratch dir; null (apt reads the full lists)
    /// when apt keeps its lists compressed, there are none, or the view cannot be made.</summary>
    private string? WritePackageView(IReadOnlyList<string> lowers, PackagesStep packages, string scratch)
    {
        using (_phases?.Measure("package view"))
        {
            try
            {
                if (PackageIndex.CurrentLists(_store.AptListsDir) is not { } lists)
                {
                    return null;
                }
                using var index = PackageIndex.OpenOrBuild(_store.AptListsDir, PackageIndexPath, lists);
                if (index is null)
                {
                    return null;
                }
                var dir = Path.Combine(scratch, "apt-view");
                PackageView.Write(index, _store.AptListsDir, dir, DpkgStatus(lowers), packages.Packages);
                return dir;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or LayerException
                or IndexOutOfRangeException or ArgumentOutOfRangeException)
            {
                // A damaged index is made again by the next package step.
                File.Delete(PackageIndexPath);
                _warn($"warning: apt reads the full package lists in this step: {e.Message}");
                return null;
            }
        }
    }

    /// <summary>The image's dpkg status file; empty when it has none.</summary>
    private static byte[] DpkgStatus(IReadOnlyList<string> lowers) =>
        SafePath.Lookup(lowers, SafePath.Resolve(lowers, "/var/lib/dpkg/status")) is { Kind: ImageEntryKind.File } entry
            ? File.ReadAllBytes(entry.HostPath)
            : [];

    private bool ListsAreFresh()
    {
        var dir = new DirectoryInfo(_store.AptListsDir);
        if (!dir.Exists)
        {
            return false;
        }
        // apt dates list files by the archive's Release, not by the download; keep our own marker.
        var marker = new FileInfo(ListsMarker);
        return dir.GetFiles("*_Packages*").Length > 0 && marker.Exists && DateTime.UtcNow - marker.LastWriteTimeUtc < _options.ListsMaxAge;
    }

    private static string ShellQuote(string s) => "'" + s.Replace("'", "'\\''") + "'";
}

/// <summary>A step ended with its tmpfs full (see <c>StepRunner.IsFull</c>); it is run again on disk.</summary>
internal sealed class ScratchFullException : Exception
{
    public ScratchFullException()
        : base("the step's memory scratch space is full")
    {
    }
}
