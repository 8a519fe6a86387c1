namespace Kiln.Build.Definition;

/// <summary>Checks a parsed kiln.yaml and collects every problem. Changes nothing; reads the file
/// system only to check copy sources.</summary>
internal sealed partial class DefinitionValidator
{
    private readonly string _contextDir;
    private readonly List<DefinitionProblem> _problems = [];

    /// <summary>Output files by full path (named with <c>path:</c> or the default <c>out/NAME.EXT</c>): two outputs
    /// must not write one file.</summary>
    private readonly Dictionary<string, string> _outputPaths = new(StringComparer.Ordinal);

    private DefinitionValidator(string contextDir) => _contextDir = contextDir;

    public static IReadOnlyList<DefinitionProblem> Validate(YNode? root, string file, string contextDir)
    {
        var validator = new DefinitionValidator(contextDir);
        if (root is null || root is YScalar { IsNull: true })
        {
            validator._problems.Add(new DefinitionProblem(new SourceMark(file, 1, 1), "the file is empty; expected a map with `images:`"));
        }
        else
        {
            validator.CheckFile(root);
        }

        // Stable sort: file order for the reader, traversal order within one position. A step list or config shared
        // through a YAML alias is checked once per image that uses it: its problems are reported once, where written.
        return validator._problems.Distinct().OrderBy(p => p.Mark.Line).ThenBy(p => p.Mark.Column).ToList();
    }

    private void CheckFile(YNode root)
    {
        if (root is not YMapping top)
        {
            Problem(root, $"the file must be a map with `images:`, found {root.KindName}");
            return;
        }

        CheckKeys(top, "at the top level", DefinitionSyntax.TopLevelKeys);
        if (top.Get("cache") is { } cache)
        {
            CheckCache(cache);
        }
        if (top.Get("channels") is { } channels)
        {
            CheckChannels(channels);
        }
        var imagesEntry = top.Find("images");
        if (imagesEntry is null)
        {
            Problem(top, "missing `images:` (a map of image name to image)");
            return;
        }

        if (imagesEntry.Value is not YMapping images)
        {
            Problem(imagesEntry.Value, $"`images` expects a map of image name to image, found {imagesEntry.Value.KindName}");
            return;
        }

        if (images.Entries.Count == 0)
        {
            Problem(images, "`images` is empty; define at least one image");
        }

        var names = images.Entries.Select(e => e.Name).OfType<string>().ToHashSet(StringComparer.Ordinal);
        if (top.Get("release") is { } release)
        {
            CheckRelease(release, names);
        }
        foreach (var entry in images.Entries)
        {
            if (!CheckKey(entry, images, "in `images`", null))
            {
                continue;
            }

            var name = entry.Name!;
            if (!DefinitionSyntax.ImageName().IsMatch(name))
            {
                Problem(entry.Key, $"image name `{name}` is not valid: use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit");
            }
            else if (name.EndsWith(".rejected", StringComparison.Ordinal))
            {
                Problem(entry.Key, $"image name `{name}` ends in `.rejected`, which names the rejected build of image `{name[..^".rejected".Length]}`; choose another name");
            }
            else if (name.EndsWith(DefinitionSyntax.FullSuffix, StringComparison.Ordinal))
            {
                Problem(entry.Key, $"image name `{name}` ends in `{DefinitionSyntax.FullSuffix}`, which names the unminimized build of image `{name[..^DefinitionSyntax.FullSuffix.Length]}`; choose another name");
            }

            CheckImage(name, entry.Value, names);
        }

        CheckCycles(images);
        if (top.Get("services") is { } services)
        {
            CheckServices(services, names);
        }
    }

    private void CheckImage(string name, YNode node, HashSet<string> names)
    {
        if (node is not YMapping image)
        {
            Problem(node, $"image `{name}` expects a map with `bootstrap` or `from`, and `steps`, `config`; found {node.KindName}");
            return;
        }

        CheckKeys(image, $"in image `{name}`", DefinitionSyntax.ImageKeys, DefinitionSyntax.NotYetSupportedHint);
        var bootstrap = image.Find("bootstrap");
        var from = image.Find("from");
        if (bootstrap is not null && from is not null)
        {
            Problem(from.Key, $"image `{name}` has both `bootstrap` and `from`; use exactly one");
        }
        else if (bootstrap is null && from is null)
        {
            Problem(image, $"image `{name}` needs `bootstrap` or `from`");
        }

        if (bootstrap is not null)
        {
            CheckBootstrap(bootstrap.Value);
        }

        if (from is not null)
        {
            CheckFrom(from.Value, names);
        }

        if (image.Get("steps") is { } steps)
        {
            CheckSteps(steps);
        }

        if (image.Get("config") is { } config)
        {
            CheckConfig(config);
        }

        if (image.Get("test") is { } test)
        {
            CheckTest(test);
        }

        if (image.Get("outputs") is { } outputs)
        {
            CheckOutputs(outputs, name);
        }

        if (image.Get("minimize") is { } minimize)
        {
            CheckMinimize(minimize, name, hasTest: image.Get("test") is not null);
        }

        if (image.Get("boot") is { } boot && ExpectString(boot, "boot", "process or systemd") is { } mode
            && !DefinitionSyntax.BootModes.Contains(mode.Value))
        {
            Problem(boot, $"`boot` must be process or systemd, found `{mode.Value}`");
        }
    }

    /// <summary><c>outputs:</c> a list of formats, or of maps with <c>format</c>, <c>path</c> and (disks) <c>size</c>.</summary>
    private void CheckOutputs(YNode node, string image)
    {
        var expected = $"a list of formats ({string.Join(", ", DefinitionSyntax.OutputFormats)}) or of maps with `format`, `path`, `size`";
        if (node is not YSequence list)
        {
            Problem(node, $"`outputs` expects {expected}, found {node.KindName}");
            return;
        }
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var item in list.Items)
        {
            YScalar? format = null;
            string? path = null;
            if (item is YMapping map)
            {
                CheckKeys(map, "in an entry of `outputs`", DefinitionSyntax.OutputKeys);
                format = RequiredString(map, "format", "in an entry of `outputs`");
                if (map.Get("path") is { } p && ExpectString(p, "path", "a file path (relative to kiln.yaml's folder)") is { } ps)
                {
                    path = ps.Value;
                    if (ps.Value.EndsWith('/'))
                    {
                        Problem(ps, $"`path: {ps.Value}` names a folder; give the file to write");
                    }
                    else if (!_outputPaths.TryAdd(Path.GetFullPath(ps.Value, _contextDir), image))
                    {
                        Problem(ps, $"`path: {ps.Value}` is also written by an output of image `{_outputPaths[Path.GetFullPath(ps.Value, _contextDir)]}`");
                    }
                }
                if (map.Get("size") is { } size && ExpectString(size, "size", "a size such as 4G or 512M") is { } ss)
                {
                    if (DefinitionSyntax.ParseSize(ss.Value) is null)
                    {
                        Problem(ss, $"`size: {ss.Value}` is not a size; write a number with K, M, G or T (e.g. 4G)");
                    }
                    else if (format is not null && !DefinitionSyntax.DiskOutputFormats.Contains(format.Value))
                    {
                        Problem(ss, $"`size` applies to disk outputs ({string.Join(", ", DefinitionSyntax.DiskOutputFormats)}), not to `{format.Value}`");
                    }
                }
            }
            else
            {
                format = ExpectString(item, "outputs", expected);
            }
            if (format is null)
            {
                continue;
            }
            if (!DefinitionSyntax.OutputFormats.Contains(format.Value))
            {
                Problem(format, $"unknown output format `{format.Value}` (expected {string.Join(", ", DefinitionSyntax.OutputFormats)})");
            }
            else if (!seen.Add(format.Value + "\0" + path))
            {
                Problem(format, $"output `{format.Value}` is listed twice{(path is null ? "" : $" with path {path}")}");
            }
            else if (path is null)
            {
                var relative = DefinitionSyntax.DefaultOutputPath(image, format.Value);
                if (!_outputPaths.TryAdd(Path.GetFullPath(relative, _contextDir), image))
                {
                    Problem(format, $"output `{format.Value}` of image `{image}` goes to {relative} by default, which an output of image " +
                        $"`{_outputPaths[Path.GetFullPath(relative, _contextDir)]}` also writes; give one of them a `path:`");
                }
            }
        }
    }

    /// <summary>A spec file of the context (its content is checked when the spec is read) or an inline map.</summary>
    private void CheckTest(YNode node)
    {
        if (node is YMapping)
        {
            return;
        }

        if (ExpectString(node, "test", "a spec file (relative to the build context) or a map of checks") is not { } scalar)
        {
            return;
        }

        var normalised = ContextPaths.Normalise(scalar.Value, out var error);
        if (scalar.Value.StartsWith('/'))
        {
            error = "is an absolute path; a spec file is relative to the build context";
        }

        error ??= normalised is null ? null : ContextPaths.CheckSource(_contextDir, normalised);
        if (error is null && Directory.Exists(ContextPaths.Combine(_contextDir, normalised!)))
        {
            error = "is a directory; expected a spec file";
        }

        if (error is not null)
        {
            Problem(node, $"`test: {scalar.Value}` {error}");
        }
    }

    private void CheckBootstrap(YNode node)
    {
        if (node is YScalar scalar && !scalar.IsNull)
        {
            var parts = scalar.Value.Split('/');
            if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
            {
                Problem(node, $"`bootstrap` expects DISTRO/SUITE (e.g. debian/bookworm), found `{scalar.Value}`");
                return;
            }

            CheckDistro(node, parts[0]);
            CheckSuite(node, parts[1]);
            return;
        }

        if (node is not YMapping map)
        {
            Problem(node, $"`bootstrap` expects DISTRO/SUITE (e.g. debian/bookworm) or a map with `distro`, `suite`, `variant`, `packages`, `mirror`; found {node.KindName}");
            return;
        }

        CheckKeys(map, "in `bootstrap`", DefinitionSyntax.BootstrapKeys);
        if (RequiredString(map, "distro", "in `bootstrap`") is { } distro)
        {
            CheckDistro(distro, distro.Value);
        }

        if (RequiredString(map, "suite", "in `bootstrap`") is { } suite)
        {
            CheckSuite(suite, suite.Value);
        }

        if (OptionalString(map, "variant") is { } variant && !DefinitionSyntax.Variants.Contains(variant.Value))
        {
            Problem(variant, $"`variant` must be one of {string.Join(", ", DefinitionSyntax.Variants)}; found `{variant.Value}`");
        }

        if (map.Get("packages") is { } packages)
        {
            CheckPackageList(packages, "packages", allowEmpty: true);
        }

        if (OptionalString(map, "mirror") is { } mirror
            && (!Uri.TryCreate(mirror.Value, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https" or "file")))
        {
            Problem(mirror, $"`mirror` expects an http, https or file URI, found `{mirror.Value}`");
        }
    }

    private void CheckDistro(YNode node, string distro)
    {
        if (!DefinitionSyntax.SupportedDistros.Contains(distro))
        {
            Problem(node, $"distro `{distro}` is not supported yet (supported: {string.Join(", ", DefinitionSyntax.SupportedDistros)})");
        }
    }

    private void CheckSuite(YNode node, string suite)
    {
        if (!DefinitionSyntax.Suite().IsMatch(suite))
        {
            Problem(node, $"suite `{suite}` is not valid: expected a name like bookworm");
        }
    }

    private void CheckFrom(YNode node, HashSet<string> names)
    {
        if (ExpectString(node, "from", "an image name, scratch, oci:PATH[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REPO[:TAG]] or HOST[:PORT]/REPO[:TAG|@DIGEST]") is not { } scalar)
        {
            return;
        }

        var reference = FromReference.Classify(scalar.Value);
        switch (reference.Kind)
        {
            case FromKind.OciArchive when string.IsNullOrEmpty(reference.LayoutPath):
                Problem(node, "`from: oci-archive:FILE[:TAG]` needs a FILE");
                break;
            case FromKind.OciArchive when reference.Tag.Length > 0 && !DefinitionSyntax.Tag().IsMatch(reference.Tag):
                Problem(node, $"`from: {scalar.Value}`: `{reference.Tag}` is not a valid tag");
                break;
            case FromKind.DockerArchive when string.IsNullOrEmpty(reference.LayoutPath):
                Problem(node, "`from: docker-archive:FILE[:REPO[:TAG]]` needs a FILE");
                break;
            case FromKind.Registry:
                try
                {
                    Kiln.Oci.Registry.ImageReference.Parse(scalar.Value);
                }
                catch (Kiln.Oci.Registry.RegistryException ex)
                {
                    Problem(node, $"`from: {scalar.Value}`: {ex.Message}");
                }
                break;
            case FromKind.OciLayout when string.IsNullOrEmpty(reference.LayoutPath):
                Problem(node, "`from: oci:PATH[:TAG]` needs a PATH");
                break;
            case FromKind.OciLayout when !DefinitionSyntax.Tag().IsMatch(reference.Tag):
                Problem(node, $"`from: {scalar.Value}`: `{reference.Tag}` is not a valid tag");
                break;
            case FromKind.ImageName when !names.Contains(scalar.Value):
                var hint = scalar.Value.Contains(':') ? " (a registry reference needs a host, e.g. registry.example.com/library/debian:bookworm)" : "";
                Problem(node, $"no image named `{scalar.Value}` in this file{hint}");
                break;
        }
    }

    private void CheckCycles(YMapping images)
    {
        // Parent of each image by `from: NAME`, in file order; first definition wins for duplicates.
        var parents = new Dictionary<string, (string Parent, YNode Node)>(StringComparer.Ordinal);
        foreach (var entry in images.Entries)
        {
            if (entry.Name is { } name && !parents.ContainsKey(name)
                && entry.Value is YMapping image && image.Find("bootstrap") is null
                && image.Get("from") is YScalar { IsNull: false } from
                && FromReference.Classify(from.Value).Kind == FromKind.ImageName)
            {
                parents[name] = (from.Value, from);
            }
        }

        var reported = new HashSet<string>(StringComparer.Ordinal);
        foreach (var start in parents.Keys)
        {
            var path = new List<string> { start };
            var current = start;
            while (parents.TryGetValue(current, out var parent))
            {
                var at = path.IndexOf(parent.Parent);
                if (at >= 0)
                {
                    var cycle = path.Skip(at).ToList();
                    // Every member of a cycle finds it from itself (at == 0); report it once, at the first member in file order.
                    if (at == 0 && !cycle.Any(reported.Contains))
                    {
                        reported.UnionWith(cycle);
                        Problem(parents[start].Node, $"`from` makes a cycle: {string.Join(" -> ", cycle)} -> {start}");
                    }

                    break;
                }

                path.Add(parent.Parent);
                current = parent.Parent;
            }
        }
    }

    private void Problem(YNode node, string message) => _problems.Add(new DefinitionProblem(node.Mark, message));
}
