using Kiln.Oci;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Kiln.Build.Execution;
using Kiln.Build.Layers;
using Kiln.Build.Sandbox;
using Kiln.Build.Store;
using Kiln.Build.Testing.Spec;

namespace Kiln.Build.Testing;

/// <summary>The bake phase: file, package, user and group checks read the image's snapshots (never the host's
/// files); command checks run in a throwaway overlay on top of the image (no network), whose upper dir is
/// deleted afterwards, so nothing they write reaches the image.</summary>
internal sealed class BakePhase
{
    private const string IoDir = "/.kiln-test";
    private const int MaxOutput = 1024 * 1024;

    private readonly KilnStore _store;
    private readonly ImageState _state;
    private readonly DateTimeOffset _epoch;
    private readonly IReadOnlyList<string> _lowers;
    private readonly string? _memoryScratchSize;
    private readonly ImageFiles _files;
    private Dictionary<string, (string Status, string Version)>? _packages;
    private readonly Teardown? _teardown;
    private readonly AccessRecorder? _recorder;

    /// <param name="teardown">Where a command's scratch space is removed once its output is read; null: before its
    /// check returns.</param>
    /// <param name="recorder">Records what the command checks open and execute (minimize: from-tests), or null.</param>
    internal BakePhase(KilnStore store, ImageState state, DateTimeOffset epoch, string? memoryScratchSize = null, Teardown? teardown = null,
        AccessRecorder? recorder = null)
    {
        _recorder = recorder;
        _teardown = teardown;
        _memoryScratchSize = memoryScratchSize;
        _store = store;
        _state = state;
        _epoch = epoch;
        _lowers = LayerCommit.LowerDirs(store, state);
        foreach (var (dir, diffId) in _lowers.Zip(state.Config.RootFs.DiffIds.Reverse()))
        {
            if (!Directory.Exists(dir))
            {
                throw StoreException.Io($"testing the image: the snapshot of layer {diffId} is missing (run kiln verify)", new DirectoryNotFoundException(dir));
            }
        }
        _files = new ImageFiles(_lowers);
    }

    public async Task<CheckReport> RunAsync(Check check, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var failures = new List<CheckFailure>();
        switch (check)
        {
            case FileCheck f:
                File(f, failures);
                break;
            case PackageCheck p:
                Package(p, failures);
                break;
            case UserCheck u:
                User(u, failures);
                break;
            case GroupCheck g:
                Group(g, failures);
                break;
            case CommandCheck c:
                await CommandAsync(c, failures, ct).ConfigureAwait(false);
                break;
            default:
                throw new InvalidOperationException($"{check.Name} is not a bake-phase check");
        }
        return new CheckReport { Section = check.Section, Subject = check.Subject, Duration = clock.Elapsed, Failures = failures };
    }

    private void File(FileCheck check, List<CheckFailure> failures)
    {
        var entry = _files.Entry(check.Subject, follow: false);
        if (!check.Exists)
        {
            if (entry is not null)
            {
                failures.Add(new("exists", "false", $"true (a {Kind(entry.Kind)})"));
            }
            return;
        }
        if (entry is null)
        {
            failures.Add(new("exists", "true", "false (no such file or directory)"));
            return;
        }
        if (check.Type is { } type && Kind(entry.Kind) != type.ToString().ToLowerInvariant())
        {
            failures.Add(new("type", type.ToString().ToLowerInvariant(), Kind(entry.Kind)));
        }
        if (check.LinkTarget is { } expectedTarget)
        {
            var target = entry.Kind == ImageEntryKind.Symlink ? new FileInfo(entry.HostPath).LinkTarget ?? "" : null;
            if (target != expectedTarget)
            {
                failures.Add(new("link-target", expectedTarget, target ?? $"not a symlink (a {Kind(entry.Kind)})"));
            }
        }
        // Metadata and content are those of what a link points to, as stat(1) -L and cat(1) see them.
        var real = entry.Kind == ImageEntryKind.Symlink ? _files.Entry(check.Subject, follow: true) : entry;
        if (real is null)
        {
            if (check.Mode is not null || check.Owner is not null || check.Group is not null || check.Contains.Count > 0 || check.Sha256 is not null)
            {
                failures.Add(new("exists", "a link to an existing file", "a dangling symlink"));
            }
            return;
        }
        if (check.Mode is { } mode && real.Mode != mode)
        {
            failures.Add(new("mode", Octal(mode), Octal((int)real.Mode)));
        }
        if (check.Owner is { } owner)
        {
            Account("owner", owner, real.Uid, _files.Passwd, _files.UserName, failures);
        }
        if (check.Group is { } group)
        {
            Account("group", group, real.Gid, _files.Group, _files.GroupName, failures);
        }
        if (check.Contains.Count > 0 || check.Sha256 is not null)
        {
            if (real.Kind != ImageEntryKind.File)
            {
                failures.Add(new(check.Sha256 is null ? "contains" : "sha256", "a regular file", $"a {Kind(real.Kind)}"));
                return;
            }
            if (check.Contains.Count > 0)
            {
                var text = _files.ReadText(check.Subject) ?? "";
                foreach (var s in check.Contains.Where(s => !text.Contains(s, StringComparison.Ordinal)))
                {
                    failures.Add(new("contains", Quote(s), $"not found in {text.Length} characters: {Excerpt(text)}"));
                }
            }
            if (check.Sha256 is { } sha)
            {
                using var stream = _files.Open(check.Subject)!;
                var actual = Convert.ToHexStringLower(Sha256Hasher.HashData(stream));
                if (actual != sha)
                {
                    failures.Add(new("sha256", sha, actual));
                }
            }
        }
    }

    private static void Account(string matcher, string expected, uint actualId, IReadOnlyList<string[]> table, Func<uint, string?> nameOf,
        List<CheckFailure> failures)
    {
        var actualName = nameOf(actualId);
        var actual = actualName is null ? actualId.ToString(CultureInfo.InvariantCulture) : $"{actualName} ({actualId})";
        if (uint.TryParse(expected, NumberStyles.None, CultureInfo.InvariantCulture, out var id))
        {
            if (id != actualId)
            {
                failures.Add(new(matcher, expected, actual));
            }
            return;
        }
        var row = table.FirstOrDefault(f => f[0] == expected);
        if (row is null)
        {
            failures.Add(new(matcher, $"{expected} (not in the image's {(matcher == "owner" ? "/etc/passwd" : "/etc/group")})", actual));
        }
        else if (row[2] != actualId.ToString(CultureInfo.InvariantCulture))
        {
            failures.Add(new(matcher, $"{expected} ({row[2]})", actual));
        }
    }

    private void Package(PackageCheck check, List<CheckFailure> failures)
    {
        _packages ??= ReadDpkgStatus();
        bool installed = _packages.TryGetValue(check.Subject, out var p) && p.Status.EndsWith(" installed", StringComparison.Ordinal);
        string actual = installed ? $"installed, version {p.Version}" : p.Status is { Length: > 0 } status ? $"not installed (status: {status})" : "not installed";
        if (installed != check.Installed)
        {
            failures.Add(new("installed", check.Installed ? "true" : "false", actual));
            return;
        }
        if (check.Version is { } version && installed && p.Version != version)
        {
            failures.Add(new("version", version, p.Version));
        }
    }

    /// <summary>The name, status and version of every stanza of the image's dpkg status file. Read as bytes, line by
    /// line: only these three values become strings (the file is some 100 KB in a small Debian image).</summary>
    private Dictionary<string, (string Status, string Version)> ReadDpkgStatus()
    {
        var result = new Dictionary<string, (string, string)>(StringComparer.Ordinal);
        ReadOnlySpan<byte> text = _files.ReadBytes("/var/lib/dpkg/status") ?? [];
        string? name = null, status = null, version = null;
        while (true)
        {
            int nl = text.IndexOf((byte)'\n');
            var line = (nl < 0 ? text : text[..nl]).TrimEnd((byte)'\r');
            if (line.IsEmpty)
            {
                Add();
            }
            else if (line.StartsWith("Package: "u8))
            {
                name = Value(line, "Package: ".Length);
            }
            else if (line.StartsWith("Status: "u8))
            {
                status = Value(line, "Status: ".Length);
            }
            else if (line.StartsWith("Version: "u8))
            {
                version = Value(line, "Version: ".Length);
            }
            if (nl < 0)
            {
                break;
            }
            text = text[(nl + 1)..];
        }
        Add();
        return result;

        void Add()
        {
            // A multi-arch package has a stanza per architecture: an installed one wins.
            if (name is not null && (!result.TryGetValue(name, out var seen) || !seen.Item1.EndsWith(" installed", StringComparison.Ordinal)))
            {
                result[name] = (status ?? "", version ?? "");
            }
            name = status = version = null;
        }

        static string Value(ReadOnlySpan<byte> line, int start) => System.Text.Encoding.UTF8.GetString(line[start..]).Trim();
    }

    private void User(UserCheck check, List<CheckFailure> failures)
    {
        var row = _files.Passwd.FirstOrDefault(f => f[0] == check.Subject);
        if (!Exists(check.Exists, row is not null, "/etc/passwd", failures) || row is null)
        {
            return;
        }
        Compare("uid", check.Uid?.ToString(CultureInfo.InvariantCulture), row[2], failures);
        Compare("gid", check.Gid?.ToString(CultureInfo.InvariantCulture), row[3], failures);
        Compare("home", check.Home, row[5], failures);
        Compare("shell", check.Shell, row[6], failures);
    }

    private void Group(GroupCheck check, List<CheckFailure> failures)
    {
        var row = _files.Group.FirstOrDefault(f => f[0] == check.Subject);
        if (Exists(check.Exists, row is not null, "/etc/group", failures) && row is not null)
        {
            Compare("gid", check.Gid?.ToString(CultureInfo.InvariantCulture), row[2], failures);
        }
    }

    private static bool Exists(bool expected, bool actual, string file, List<CheckFailure> failures)
    {
        if (expected != actual)
        {
            failures.Add(new("exists", expected ? "true" : "false", actual ? $"true (in the image's {file})" : $"false (not in the image's {file})"));
            return false;
        }
        return actual;
    }

    private static void Compare(string matcher, string? expected, string actual, List<CheckFailure> failures)
    {
        if (expected is not null && expected != actual)
        {
            failures.Add(new(matcher, expected, actual));
        }
    }

    private async Task CommandAsync(CommandCheck check, List<CheckFailure> failures, CancellationToken ct)
    {
        var result = await RunCommandAsync(check.Subject, check.Timeout, ct).ConfigureAwait(false);
        Outcome(check, result.ExitCode, result.Stdout, result.Stderr, result.TimedOut, failures);
    }

    /// <summary>Compares a command's outcome with a check; shared with the boot phase.</summary>
    internal static void Outcome(CommandCheck check, int exitCode, string stdout, string stderr, bool timedOut, List<CheckFailure> failures)
    {
        if (timedOut)
        {
            failures.Add(new("timeout", $"finishes within {check.Timeout.TotalSeconds.ToString(CultureInfo.InvariantCulture)}s",
                $"still running; stopped. stdout: {Excerpt(stdout)} stderr: {Excerpt(stderr)}"));
            return;
        }
        if (exitCode != check.ExitStatus)
        {
            failures.Add(new("exit-status", check.ExitStatus.ToString(CultureInfo.InvariantCulture),
                $"{exitCode.ToString(CultureInfo.InvariantCulture)}; stderr: {Excerpt(stderr)}"));
        }
        foreach (var s in check.Stdout.Where(s => !stdout.Contains(s, StringComparison.Ordinal)))
        {
            failures.Add(new("stdout", Quote(s), Excerpt(stdout)));
        }
        foreach (var s in check.Stderr.Where(s => !stderr.Contains(s, StringComparison.Ordinal)))
        {
            failures.Add(new("stderr", Quote(s), Excerpt(stderr)));
        }
        Matches("stdout-matches", check.StdoutMatches, stdout, failures);
        Matches("stderr-matches", check.StderrMatches, stderr, failures);
    }

    private static void Matches(string matcher, string? pattern, string text, List<CheckFailure> failures)
    {
        if (pattern is null)
        {
            return;
        }
        bool match;
        try
        {
            match = Regex.IsMatch(text, pattern, RegexOptions.Multiline | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(5));
        }
        catch (RegexMatchTimeoutException)
        {
            failures.Add(new(matcher, $"/{pattern}/", "the match took longer than 5s"));
            return;
        }
        if (!match)
        {
            failures.Add(new(matcher, $"/{pattern}/", Excerpt(text)));
        }
    }

    /// <summary>The words of a plain command (<see cref="ShellWords.Plain"/>) where running them without the shell runs
    /// what the image's shell would: its /bin/sh is dash or bash (busybox's runs its own applets before the image's
    /// programs), and the first file the shell's PATH search finds is an executable file (else the shell's own error
    /// is the one to see). Null: the shell runs the command.</summary>
    private string[]? WithoutShell(string command, IReadOnlyList<KeyValuePair<string, string>> environment, string workingDirectory)
    {
        if (ShellWords.Plain(command, environment) is not { } words
            || _files.Entry("/bin/sh", follow: true) is not { Kind: ImageEntryKind.File } shell
            || Path.GetFileName(shell.ImagePath) is not ("dash" or "bash")
            || environment.LastOrDefault(e => e.Key == "PATH").Value is not { } path)
        {
            return null;
        }
        var program = words[0];
        var candidates = program.Contains('/')
            ? [program.StartsWith('/') ? program : Path.Combine(workingDirectory, program)]
            : path.Split(':').Select(dir => Path.Combine(dir.Length > 0 ? dir : workingDirectory, program));
        foreach (var candidate in candidates)
        {
            if (!candidate.StartsWith('/'))
            {
                return null; // a relative PATH entry: the shell's business
            }
            if (_files.Entry(candidate, follow: true) is { } found)
            {
                return found.Kind == ImageEntryKind.File && (found.Mode & 0x49) != 0 ? words : null; // 0111: executable
            }
        }
        return null;
    }

    /// <summary>Runs <c>/bin/sh -c COMMAND</c> (or, for <see cref="ShellWords.Plain"/> words, what the shell would run
    /// for them: see <see cref="WithoutShell"/>) in a fresh overlay on the image with the image's env, workdir and user,
    /// no network; the overlay's upper dir is deleted afterwards.</summary>
    internal async Task<(int ExitCode, string Stdout, string Stderr, bool TimedOut)> RunCommandAsync(string command, TimeSpan timeout, CancellationToken ct)
    {
        var (scratch, _) = ScratchSpace.CreateTempDir(_store, "test", _memoryScratchSize);
        try
        {
            var io = Path.Combine(scratch, "io");
            Directory.CreateDirectory(io);
            // The command may run as the image's (unprivileged) user and writes its output here.
            System.IO.File.SetUnixFileMode(io, (UnixFileMode)Convert.ToInt32("1777", 8));
            var config = _state.Config.Config;
            var environment = ConfigMerge.StepEnvironment(config, _epoch, []);
            // Plain words run without the shell, as the shell's child would (not as PID 1); another user's need the
            // image's shell (see Sandbox).
            var workingDirectory = config.WorkingDir is { Length: > 0 } wd ? wd : "/";
            var plain = config.User is not { Length: > 0 } ? WithoutShell(command, environment, workingDirectory) : null;
            var spec = new SandboxSpec
            {
                LowerDirsTopFirst = _lowers,
                UpperDir = Path.Combine(scratch, "upper"),
                ScratchDir = Path.Combine(scratch, "sandbox"),
                Command = plain ?? ["/bin/sh", "-c", command],
                CommandAsChild = plain is not null,
                OutputFiles = ($"{IoDir}/stdout", $"{IoDir}/stderr"),
                Environment = environment,
                WorkingDirectory = workingDirectory,
                User = config.User is { Length: > 0 } user ? user : null,
                HostNetwork = false,
                Binds = [new BindMount(io, IoDir)],
                Recorder = _recorder,
            };
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
            limit.CancelAfter(timeout);
            int status = -1;
            bool timedOut = false;
            var sandboxLines = new List<string>();
            try
            {
                status = await Sandbox.Sandbox.RunAsync(spec, line => { lock (sandboxLines) { sandboxLines.Add(line); } }, limit.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                timedOut = true;
            }
            var stdout = ReadOutput(Path.Combine(io, "stdout"));
            var stderr = ReadOutput(Path.Combine(io, "stderr"));
            if (sandboxLines.Count > 0)
            {
                // Only what failed before the command's own redirection: the sandbox's or the shell's complaints.
                stderr = string.Join('\n', sandboxLines) + (stderr.Length > 0 ? "\n" + stderr : "");
            }
            return (status, stdout, stderr, timedOut);
        }
        finally
        {
            if (_teardown is null)
            {
                _store.DeleteTempDir(scratch);
            }
            else
            {
                _teardown.Add(Task.Run(() => _store.DeleteTempDir(scratch), CancellationToken.None));
            }
        }
    }

    private static string ReadOutput(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists || info.LinkTarget is not null)
        {
            return "";
        }
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read);
        var buffer = new byte[(int)Math.Min(stream.Length, MaxOutput)];
        stream.ReadExactly(buffer);
        return Encoding.UTF8.GetString(buffer);
    }

    private static string Kind(ImageEntryKind kind) => kind switch
    {
        ImageEntryKind.File => "file",
        ImageEntryKind.Directory => "directory",
        ImageEntryKind.Symlink => "symlink",
        ImageEntryKind.CharDevice => "character device",
        ImageEntryKind.BlockDevice => "block device",
        ImageEntryKind.Fifo => "fifo",
        _ => "socket",
    };

    private static string Octal(int mode) => Convert.ToString(mode, 8).PadLeft(4, '0');

    internal static string Quote(string s) => "\"" + s + "\"";

    /// <summary>A short, one-line view of output for a failure message.</summary>
    internal static string Excerpt(string text)
    {
        var t = text.Trim().Replace("\n", "\\n", StringComparison.Ordinal);
        return t.Length == 0 ? "(empty)" : Quote(t.Length <= 300 ? t : t[..300] + "…");
    }
}
