using System.Diagnostics;
using Kiln.Build.Definition;
using Kiln.Build.Sandbox;
using Kiln.Build.Store;

namespace Kiln.Build.Execution;

/// <summary>Makes a Debian base with mmdebstrap into a work dir, then commits that dir as the first layer.</summary>
internal sealed class Bootstrapper
{
    private readonly KilnStore _store;
    private readonly BuildOptions _options;

    public Bootstrapper(KilnStore store, BuildOptions options)
    {
        _store = store;
        _options = options;
    }

    /// <summary>What identifies a bootstrap's result besides its definition: the apt sources it reads.</summary>
    public static string Identity(BootstrapSource source, string hostAptDir) =>
        string.Join('\n', AptSources.ForBootstrap(source, hostAptDir));

    public async Task<ImageState> RunAsync(string image, BootstrapSource source, Action<string> output, CancellationToken ct)
    {
        var sources = AptSources.ForBootstrap(source, _options.HostAptDir);
        var work = _store.CreateTempDir("bootstrap");
        try
        {
            var rootfs = Path.Combine(work, "rootfs");
            // mmdebstrap mounts /proc, /dev and /sys into the new root: in a private mount and pid namespace
            // those mounts and every process it starts end with it, even when it is killed.
            var psi = new ProcessStartInfo(HostPrograms.Setpriv.Name)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                RedirectStandardInput = true,
                UseShellExecute = false,
            };
            psi.Environment["SOURCE_DATE_EPOCH"] = _options.Epoch.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture);
            psi.Environment["TMPDIR"] = work;
            foreach (var a in new[] { "--pdeathsig", "KILL", "--", HostPrograms.Unshare.Name, "--mount", "--pid", "--fork", "--kill-child", "--propagation", "private", "--", HostPrograms.Mmdebstrap.Name })
            {
                psi.ArgumentList.Add(a);
            }
            psi.ArgumentList.Add("--mode=root");
            psi.ArgumentList.Add($"--variant={source.Variant}");
            psi.ArgumentList.Add("--format=directory");
            if (source.Packages.Count > 0)
            {
                psi.ArgumentList.Add("--include=" + string.Join(',', source.Packages));
            }
            // Downloads land in the store's shared archive cache, so a second bootstrap (another store
            // key, a --refresh) fetches only what changed.
            Directory.CreateDirectory(_store.AptArchivesDir);
            psi.ArgumentList.Add("--skip=download/empty");
            psi.ArgumentList.Add("--skip=essential/unlink");
            psi.ArgumentList.Add($"--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/partial && {HostPrograms.Find} '{_store.AptArchivesDir}' -maxdepth 1 -name '*.deb' -exec {HostPrograms.Cp} -l -t \"$1\"/var/cache/apt/archives/ {{}} + 2>/dev/null || true");
            psi.ArgumentList.Add($"--customize-hook={HostPrograms.Find} \"$1\"/var/cache/apt/archives -maxdepth 1 -name '*.deb' -exec {HostPrograms.Cp} -n -t '{_store.AptArchivesDir}' {{}} + ; rm -f \"$1\"/var/cache/apt/archives/*.deb");
            psi.ArgumentList.Add(source.Suite);
            psi.ArgumentList.Add(rootfs);
            foreach (var line in sources)
            {
                psi.ArgumentList.Add(line);
            }
            var tail = new OutputTail(30);
            int status;
            try
            {
                status = await ChildProcess.RunAsync(psi, line =>
                {
                    if (line is null)
                    {
                        return;
                    }
                    tail.Add(line);
                    output(line);
                }, ct).ConfigureAwait(false);
            }
            catch (SandboxException ex)
            {
                throw new BuildException($"{image}: cannot run {HostPrograms.Mmdebstrap} ({ex.Message}){HostPrograms.InstallHint(HostPrograms.Mmdebstrap.Name)}", ex) { Image = image };
            }
            if (status != 0)
            {
                throw BuildException.BootstrapFailed(image, status, tail.Lines);
            }
            var createdBy = $"kiln bootstrap {source.Distro}/{source.Suite} variant={source.Variant}" +
                (source.Packages.Count > 0 ? " include=" + string.Join(',', source.Packages.Order(StringComparer.Ordinal)) : "");
            return await LayerCommit.CommitAsync(_store, rootfs, ImageState.Empty(_options.Timestamp), createdBy, _options, ct).ConfigureAwait(false);
        }
        finally
        {
            _store.DeleteTempDir(work);
        }
    }
}
