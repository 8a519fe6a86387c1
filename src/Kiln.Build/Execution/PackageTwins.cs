using System.Diagnostics;
using System.Globalization;
using System.Text;
using Kiln.Build.Native;

namespace Kiln.Build.Execution;

/// <summary>Uncompressed copies ("twins") of the cached package downloads, which package steps install in place of
/// the downloads: the same files, so the same layer, without unpacking xz again in every step.</summary>
/// <remarks>
/// Debian's packages carry their files as data.tar.xz. Installing nginx-light's 18 packages in a package step spent
/// about 0.12 s of its 0.97 s in xz (8 alternating pairs on the reference machine: 0.95–1.01 s against 0.81–0.87 s
/// with twins). A twin is an ar archive like the download, its data member as plain tar (which dpkg reads since
/// 1.10.24) and its other members as they are; dpkg reads it as it reads the download. apt still reads, checks and
/// passes on the download itself; a wrapper that apt runs as dpkg (<see cref="Wrapper"/>) swaps in the twin, only
/// when it carries the download's exact mtime (to the nanosecond): a download replaced since, by apt or anyone, no
/// longer matches and is installed as it is. Twins live outside the downloads dir and are bound read-only into
/// package steps, so no step can plant one. They take three to four times the space of the downloads they stand for;
/// those compressed with gzip, zstd or nothing are fast to unpack already and get none.
/// </remarks>
internal static class PackageTwins
{
    /// <summary>Where package steps see the twins (read-only).</summary>
    public const string InImage = "/var/cache/apt/kiln-plain";

    /// <summary>The wrapper's file name at the root of the sandbox's skeleton layer (so never in a layer).</summary>
    public const string WrapperName = ".kiln-dpkg";

    /// <summary>The dpkg that apt runs in package steps (<c>Dir::Bin::dpkg</c>): a download's path becomes its twin's
    /// when the twin is current; everything else passes through. Only shell builtins, so no extra process.</summary>
    // An in-image script: it runs the image's dpkg, not the host's.
    public const string Wrapper = $$"""
        #!/bin/sh
        # written by kiln: dpkg installs the uncompressed twin of a cached download when the twin is current
        for a do
          shift
          case $a in
            {{StepRunner.AptArchivesInImage}}/*.deb)
              t={{InImage}}/${a##*/}
              if [ -f "$t" ] && ! [ "$t" -nt "$a" ] && ! [ "$t" -ot "$a" ]; then a=$t; fi ;;
          esac
          set -- "$@" "$a"
        done
        exec dpkg "$@"

        """;

    private static readonly string[] SlowCompressions = [".xz", ".lzma", ".bz2"];

    /// <summary>Makes a twin for every download in <paramref name="archives"/> of the packages named (those a step
    /// just installed: the rest of the cache, such as the bootstrap's downloads, is seldom installed again) that needs
    /// one and has none current, and removes twins whose download is gone. Returns how many twins it made. A download
    /// dpkg-deb cannot read gets no twin.</summary>
    public static async Task<int> RefreshAsync(string archives, string twins, IReadOnlySet<string> packages, CancellationToken ct)
    {
        Directory.CreateDirectory(twins);
        foreach (var twin in Directory.EnumerateFiles(twins))
        {
            var name = Path.GetFileName(twin);
            bool orphan = !name.StartsWith(".tmp-", StringComparison.Ordinal) && !File.Exists(Path.Combine(archives, name));
            bool stale = name.StartsWith(".tmp-", StringComparison.Ordinal) && DateTime.UtcNow - File.GetLastWriteTimeUtc(twin) > TimeSpan.FromHours(1);
            if (orphan || stale)
            {
                File.Delete(twin);
            }
        }
        var todo = Directory.EnumerateFiles(archives, "*.deb")
            .Where(deb => packages.Contains(Path.GetFileName(deb).Split('_')[0]) && !IsCurrent(deb, Path.Combine(twins, Path.GetFileName(deb))))
            .ToList();
        int made = 0;
        await Parallel.ForEachAsync(todo, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount, CancellationToken = ct }, async (deb, token) =>
        {
            if (await CreateAsync(deb, Path.Combine(twins, Path.GetFileName(deb)), token).ConfigureAwait(false))
            {
                Interlocked.Increment(ref made);
            }
        }).ConfigureAwait(false);
        return made;
    }

    /// <summary>The packages a step installed or reinstalled: those whose file list dpkg wrote into its upper dir.</summary>
    public static IReadOnlySet<string> InstalledBy(string upper)
    {
        // Each component a real directory of the upper dir: a symlink there would lead onto the host.
        var info = upper;
        foreach (var part in new[] { "var", "lib", "dpkg", "info" })
        {
            info = Path.Combine(info, part);
            if (LibC.TryLstat(info) is not { IsDirectory: true })
            {
                return new HashSet<string>();
            }
        }
        // A whiteout (a removed package's list) is no install.
        return Directory.EnumerateFiles(info, "*.list")
            .Where(f => LibC.TryLstat(f) is { IsRegularFile: true })
            .Select(f => Path.GetFileNameWithoutExtension(f).Split(':')[0])
            .ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>True when <paramref name="twin"/> is a file with the download's exact mtime, as the wrapper checks.</summary>
    internal static bool IsCurrent(string deb, string twin)
    {
        var t = LibC.TryLstat(twin);
        var d = LibC.TryLstat(deb);
        return t is { IsRegularFile: true } && d is { } && t.Value.MTimeSeconds == d.Value.MTimeSeconds && t.Value.MTimeNanoseconds == d.Value.MTimeNanoseconds;
    }

    /// <summary>Writes the twin of <paramref name="deb"/> (debian-binary and the control member byte for byte, data.tar
    /// uncompressed by dpkg-deb), gives it the download's mtime and renames it into place. False when the download
    /// needs none (fast to unpack already) or dpkg-deb could not read it.</summary>
    internal static async Task<bool> CreateAsync(string deb, string twin, CancellationToken ct)
    {
        var members = ArMembers(deb);
        if (members is not [{ Name: "debian-binary" } version, { Name: var controlName } control, { Name: var dataName }, ..]
            || !controlName.StartsWith("control.tar", StringComparison.Ordinal)
            || !dataName.StartsWith("data.tar", StringComparison.Ordinal) || !SlowCompressions.Any(dataName.EndsWith))
        {
            return false;
        }
        var status = LibC.TryLstat(deb);
        if (status is null)
        {
            return false;
        }
        var temp = Path.Combine(Path.GetDirectoryName(twin)!, $".tmp-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            await using (var output = new FileStream(temp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16, useAsync: false))
            {
                output.Write("!<arch>\n"u8);
                await using (var input = File.OpenRead(deb))
                {
                    foreach (var member in new[] { version, control })
                    {
                        WriteHeader(output, member.Name, member.Size);
                        input.Position = member.Offset;
                        await CopyRangeAsync(input, output, member.Size, ct).ConfigureAwait(false);
                        if (member.Size % 2 == 1)
                        {
                            output.WriteByte((byte)'\n');
                        }
                    }
                }
                if (!await MemberFromDpkgDebAsync(output, "data.tar", "--fsys-tarfile", deb, ct).ConfigureAwait(false))
                {
                    return false;
                }
                // On disk before the rename: after a crash, a twin that has its name and mtime but not its data
                // would be handed to dpkg.
                output.Flush(flushToDisk: true);
            }
            LibC.SetTimesNoFollow(temp, status.Value.MTimeSeconds, status.Value.MTimeNanoseconds);
            File.Move(temp, twin, overwrite: true);
            return true;
        }
        finally
        {
            File.Delete(temp);
        }
    }

    internal readonly record struct ArMember(string Name, long Offset, long Size);

    /// <summary>The members of an ar archive, in order, with where their contents start; null when the file is not
    /// an ar archive or a header is broken.</summary>
    internal static List<ArMember>? ArMembers(string path)
    {
        using var f = File.OpenRead(path);
        Span<byte> magic = stackalloc byte[8];
        if (f.ReadAtLeast(magic, 8, throwOnEndOfStream: false) != 8 || !magic.SequenceEqual("!<arch>\n"u8))
        {
            return null;
        }
        var result = new List<ArMember>();
        var header = new byte[60];
        while (f.ReadAtLeast(header, 60, throwOnEndOfStream: false) == 60)
        {
            var name = Encoding.ASCII.GetString(header, 0, 16).TrimEnd(' ').TrimEnd('/');
            if (!long.TryParse(Encoding.ASCII.GetString(header, 48, 10).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var size)
                || f.Position + size > f.Length)
            {
                return null;
            }
            result.Add(new ArMember(name, f.Position, size));
            f.Seek(size + size % 2, SeekOrigin.Current);
        }
        return result;
    }

    private static async Task CopyRangeAsync(Stream input, Stream output, long length, CancellationToken ct)
    {
        var buffer = new byte[(int)Math.Min(length, 1 << 16)];
        while (length > 0)
        {
            int n = await input.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, length)), ct).ConfigureAwait(false);
            if (n == 0)
            {
                throw new EndOfStreamException();
            }
            await output.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            length -= n;
        }
    }

    /// <summary>An ar member header as dpkg-deb writes them: name, mtime 0, owner 0:0, mode 100644, size.</summary>
    private static void WriteHeader(Stream output, string name, long size)
    {
        var text = $"{name,-16}{"0",-12}{"0",-6}{"0",-6}{"100644",-8}{size.ToString(CultureInfo.InvariantCulture),-10}`\n";
        output.Write(Encoding.ASCII.GetBytes(text));
    }

    /// <summary>Appends a member holding dpkg-deb's output for <paramref name="option"/>: the header is written
    /// with the size once the output has ended.</summary>
    private static async Task<bool> MemberFromDpkgDebAsync(FileStream output, string name, string option, string deb, CancellationToken ct)
    {
        long headerAt = output.Position;
        WriteHeader(output, name, 0);
        long start = output.Position;
        var psi = new ProcessStartInfo(Kiln.Build.Sandbox.HostPrograms.DpkgDeb.Name)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(option);
        psi.ArgumentList.Add(deb);
        using var process = new Process { StartInfo = psi };
        try
        {
            Kiln.Build.Sandbox.InheritedDescriptors.CloseOnExec();
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
        var errors = process.StandardError.ReadToEndAsync(ct);
        try
        {
            await process.StandardOutput.BaseStream.CopyToAsync(output, ct).ConfigureAwait(false);
            await process.WaitForExitAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill();
            throw;
        }
        await errors.ConfigureAwait(false);
        if (process.ExitCode != 0)
        {
            return false;
        }
        long size = output.Position - start;
        if (size % 2 == 1)
        {
            output.WriteByte((byte)'\n');
        }
        long end = output.Position;
        output.Position = headerAt;
        WriteHeader(output, name, size);
        output.Position = end;
        return true;
    }
}
