namespace Kiln.Build.Execution;

/// <summary>The package lists a package step's apt reads: only the stanzas of the packages it could use. apt spends
/// most of an install of a few packages on the whole archive (about 63,000 packages for Debian's main): it works out
/// the state of every package and dependency before it looks at the request. A view holds the packages the image has
/// (every name in its dpkg status), those named in the request, and everything they could pull in: every alternative
/// of their Depends and Pre-Depends and every package providing a name, followed to the end, with all versions from
/// all lists, in the lists' order, beside the lists' Release files. Recommends and Suggests are listed (apt names them
/// in its summary) but not followed: package steps never install them.
/// </summary>
/// <remarks>
/// apt then finds the same packages: nothing outside the view can be reached from what the image has or the request
/// names, and every stanza it could choose keeps its list and Release (so its origin and pin). Installing nginx-light's
/// 18 packages on examples/web's base: the lists hold 63,000 packages, the view about 270 stanzas; `apt-get -s install`
/// printed the same either way for 39 requests (30 on that base, from nginx-light to xserver-xorg-core, 9 on the web
/// image, conflicts and replacements included), in 35-80 ms instead of 850.
/// </remarks>
internal static class PackageView
{
    /// <summary>Where package steps see their view (<c>Dir::State::Lists</c>), read-only.</summary>
    public const string InImage = "/var/lib/apt/kiln-view";

    private static readonly string[] ReleaseSuffixes = ["_InRelease", "_Release", "_Release.gpg"];

    /// <summary>The stanzas the view holds, in index order: the packages of <paramref name="status"/> (a dpkg
    /// status file) and <paramref name="requested"/> (names, each optionally <c>=VERSION</c>) with all they could need.</summary>
    public static List<int> Select(PackageIndex index, ReadOnlySpan<byte> status, IEnumerable<string> requested)
    {
        var followed = new bool[index.NameCount];
        var listed = new bool[index.NameCount];
        var pending = new Stack<int>();
        void Push(int id)
        {
            if (id >= 0 && !followed[id])
            {
                pending.Push(id);
            }
        }
        foreach (var name in requested)
        {
            int eq = name.IndexOf('=', StringComparison.Ordinal);
            Push(index.Find(eq < 0 ? name : name[..eq]));
        }
        foreach (var name in InstalledNames(status))
        {
            Push(index.Find(name));
        }
        while (pending.TryPop(out int id))
        {
            if (followed[id])
            {
                continue;
            }
            followed[id] = listed[id] = true;
            foreach (int provider in index.ProvidersOf(id))
            {
                Push(provider);
            }
            foreach (int stanza in index.StanzasOf(id))
            {
                foreach (int dep in index.DependsOf(stanza))
                {
                    Push(dep);
                }
                foreach (int mention in index.MentionsOf(stanza))
                {
                    listed[mention] = true;
                }
            }
        }
        var stanzas = new List<int>();
        for (int id = 0; id < index.NameCount; id++)
        {
            if (listed[id])
            {
                stanzas.AddRange(index.StanzasOf(id));
            }
        }
        stanzas.Sort();
        return stanzas;
    }

    /// <summary>The value of every <c>Package:</c> field of a dpkg status file.</summary>
    internal static IEnumerable<byte[]> InstalledNames(ReadOnlySpan<byte> status)
    {
        var names = new List<byte[]>();
        while (status.Length > 0)
        {
            int nl = status.IndexOf((byte)'\n');
            var line = nl < 0 ? status : status[..nl];
            if (line.StartsWith("Package:"u8))
            {
                names.Add(line["Package:".Length..].Trim((byte)' ').Trim((byte)'\t').ToArray());
            }
            status = nl < 0 ? [] : status[(nl + 1)..];
        }
        return names;
    }

    /// <summary>Writes the view into <paramref name="viewDir"/> (created; must not exist): for every list of the
    /// index a file of the same name with the selected stanzas, each Release file of <paramref name="listsDir"/>, and
    /// the <c>partial</c> dir apt expects. Returns how many stanzas it holds.</summary>
    public static int Write(PackageIndex index, string listsDir, string viewDir, ReadOnlySpan<byte> status, IEnumerable<string> requested)
    {
        var stanzas = Select(index, status, requested);
        Directory.CreateDirectory(Path.Combine(viewDir, "partial"));
        byte[] buffer = new byte[1 << 16];
        int next = 0;
        for (int file = 0; file < index.Files.Count; file++)
        {
            var name = index.Files[file].Name;
            using var source = File.OpenHandle(Path.Combine(listsDir, name));
            using var output = new FileStream(Path.Combine(viewDir, name), FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16);
            for (; next < stanzas.Count && index.FileOf(stanzas[next]) == file; next++)
            {
                var (offset, length) = index.RangeOf(stanzas[next]);
                if (buffer.Length < length)
                {
                    buffer = new byte[length];
                }
                var text = buffer.AsSpan(0, length);
                if (RandomAccess.Read(source, text, offset) != length)
                {
                    throw new IOException($"package list '{Path.Combine(listsDir, name)}' is shorter than its index says");
                }
                output.Write(text);
                output.Write(text.Length > 0 && text[^1] == (byte)'\n' ? "\n"u8 : "\n\n"u8);
            }
        }
        foreach (var path in Directory.EnumerateFiles(listsDir))
        {
            var name = Path.GetFileName(path);
            if (ReleaseSuffixes.Any(s => name.EndsWith(s, StringComparison.Ordinal)))
            {
                File.Copy(path, Path.Combine(viewDir, name));
            }
        }
        return stanzas.Count;
    }
}
