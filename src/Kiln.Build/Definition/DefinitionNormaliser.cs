using System.Globalization;

namespace Kiln.Build.Definition;

/// <summary>Builds the immutable model from a tree that validation has accepted.</summary>
internal static partial class DefinitionNormaliser
{
    public static KilnFile Normalise(YNode root, string file, string contextDir)
    {
        var images = (YMapping)((YMapping)root).Get("images")!;
        return new KilnFile
        {
            Path = file,
            ContextDir = contextDir,
            Images = images.Entries.Select(e => Image(((YScalar)e.Key), (YMapping)e.Value, contextDir)).ToList(),
            Cache = ((YMapping)root).Get("cache") is YMapping cache ? Cache(cache) : null,
            Services = ((YMapping)root).Get("services") is YMapping services
                ? services.Entries.Select(e => Service((YScalar)e.Key, (YMapping)e.Value, contextDir)).ToList()
                : [],
            Channels = ((YMapping)root).Get("channels") is YMapping channels ? Channels(channels) : [],
            Release = ((YMapping)root).Get("release") is YMapping release ? Release(release) : [],
        };
    }

    private static ImageDefinition Image(YScalar name, YMapping image, string contextDir)
    {
        var steps = image.Get("steps") as YSequence;
        var config = image.Get("config") as YMapping;
        return new ImageDefinition
        {
            Name = name.Value,
            Mark = name.Mark,
            Source = image.Get("bootstrap") is { } bootstrap ? Bootstrap(bootstrap) : From((YScalar)image.Get("from")!, contextDir),
            Steps = steps?.Items.Select(s => Step((YMapping)s)).ToList() ?? [],
            Config = config is null ? new ConfigDefinition() : Config(config),
            Test = image.Get("test") is { } test ? Test(test, contextDir) : null,
            Boot = image.Get("boot") is YScalar { Value: "systemd" } ? BootMode.Systemd : BootMode.Process,
            Outputs = image.Get("outputs") is YSequence outputs ? outputs.Items.Select(o => Output(o, contextDir)).ToList() : [],
            Minimize = image.Get("minimize") is YMapping minimize ? Minimize(minimize) : null,
        };
    }

    private static ServiceDefinition Service(YScalar name, YMapping service, string contextDir)
    {
        var package = ContextPaths.Combine(contextDir, ContextPaths.Normalise(Text(service.Get("package")!), out _)!);
        return new ServiceDefinition
        {
            Name = name.Value,
            Mark = name.Mark,
            Image = Text(service.Get("image")!),
            Package = package,
            PackageIsFolder = Directory.Exists(package),
            Config = service.Get("config") is YMapping config ? Map(config) : [],
            Test = service.Get("test") is { } test ? Test(test, contextDir) : null,
        };
    }
    private static MinimizeDefinition Minimize(YMapping map) => new()
    {
        Mark = map.Mark,
        Profiles = map.Get("profiles") is { } profiles ? Strings(profiles).Distinct().Order(StringComparer.Ordinal).ToList() : [],
        FromTests = map.Get("from-tests") is YScalar { Value: "true" },
        Keep = map.Get("keep") is { } keep ? Strings(keep).Select(DefinitionSyntax.NormaliseImagePath).Select(p => p.Length > 1 ? p.TrimEnd('/') : p).ToList() : [],
    };

    private static OutputDefinition Output(YNode node, string contextDir)
    {
        if (node is YScalar scalar)
        {
            return new OutputDefinition { Mark = node.Mark, Format = scalar.Value };
        }
        var map = (YMapping)node;
        return new OutputDefinition
        {
            Mark = node.Mark,
            Format = ((YScalar)map.Get("format")!).Value,
            Path = map.Get("path") is YScalar p ? System.IO.Path.GetFullPath(p.Value, contextDir) : null,
            SizeBytes = map.Get("size") is YScalar s ? DefinitionSyntax.ParseSize(s.Value) : null,
        };
    }

    private static TestSource Test(YNode node, string contextDir) => node is YScalar scalar
        ? new TestSource { Mark = node.Mark, File = ContextPaths.Combine(contextDir, ContextPaths.Normalise(scalar.Value, out _)!) }
        : new TestSource { Mark = node.Mark, Inline = node };

    private static ImageSource Bootstrap(YNode node)
    {
        if (node is YScalar scalar)
        {
            var parts = scalar.Value.Split('/');
            return new BootstrapSource { Mark = node.Mark, Distro = parts[0], Suite = parts[1] };
        }

        var map = (YMapping)node;
        return new BootstrapSource
        {
            Mark = node.Mark,
            Distro = Text(map.Get("distro")!),
            Suite = Text(map.Get("suite")!),
            Variant = map.Get("variant") is { } variant ? Text(variant) : "minbase",
            Packages = map.Get("packages") is { } packages ? Packages(packages) : [],
            Mirror = map.Get("mirror") is { } mirror ? Text(mirror) : null,
        };
    }

    private static ImageSource From(YScalar node, string contextDir)
    {
        var reference = FromReference.Classify(node.Value);
        return reference.Kind switch
        {
            FromKind.Scratch => new ScratchSource { Mark = node.Mark },
            FromKind.OciLayout => new OciLayoutSource
            {
                Mark = node.Mark,
                LayoutPath = Path.GetFullPath(reference.LayoutPath!, contextDir),
                Tag = reference.Tag,
            },
            FromKind.OciArchive => new OciArchiveSource
            {
                Mark = node.Mark,
                ArchivePath = Path.GetFullPath(reference.LayoutPath!, contextDir),
                Tag = reference.Tag.Length > 0 ? reference.Tag : null,
            },
            FromKind.DockerArchive => new OciArchiveSource
            {
                Mark = node.Mark,
                ArchivePath = Path.GetFullPath(reference.LayoutPath!, contextDir),
                Tag = reference.Tag.Length > 0 ? reference.Tag : null,
                Docker = true,
            },
            FromKind.Registry => new RegistrySource { Mark = node.Mark, Reference = node.Value },
            FromKind.ImageName => new FromImageSource { Mark = node.Mark, ImageName = node.Value },
            _ => throw new InvalidOperationException($"validation let `from: {node.Value}` through"),
        };
    }

    private static StepDefinition Step(YMapping step)
    {
        var kind = step.Entries.First(e => DefinitionSyntax.StepKinds.Contains(e.Name!));
        var value = kind.Value;
        var mark = kind.Key.Mark;
        switch (kind.Name)
        {
            case "packages":
                return new PackagesStep { Mark = mark, Packages = Packages(value) };
            case "run":
                return new RunStep
                {
                    Mark = mark,
                    Command = Text(value),
                    Network = step.Get("network") is YScalar { Value: "none" } ? StepNetwork.None : StepNetwork.Host,
                    Cache = step.Get("cache") is { } cache ? Strings(cache).Select(DefinitionSyntax.NormaliseImagePath).ToList() : [],
                    Secrets = step.Get("secrets") is YSequence secrets
                        ? secrets.Items.OfType<YMapping>().Select(m => new SecretRef(Text(m.Get("id")!),
                            m.Get("file") is { } f ? Text(f) : null, m.Get("env") is { } e ? Text(e) : null)).ToList()
                        : [],
                };
            case "copy":
                var owner = step.Get("owner") is { } o ? DefinitionSyntax.Owner().Match(Text(o)) : null;
                return new CopyStep
                {
                    Mark = mark,
                    Sources = Strings(value).Select(s => ContextPaths.Normalise(s, out _)!).ToList(),
                    To = DefinitionSyntax.NormaliseImagePath(Text(step.Get("to")!)),
                    Uid = owner is null ? null : int.Parse(owner.Groups[1].Value, CultureInfo.InvariantCulture),
                    Gid = owner is { Groups: [_, _, _, { Success: true } gid] } ? int.Parse(gid.Value, CultureInfo.InvariantCulture) : null,
                    Mode = step.Get("mode") is { } mode ? DefinitionSyntax.ParseOctal(Text(mode)) : null,
                };
            case "env":
                return new EnvStep { Mark = mark, Variables = Map(value) };
            case "workdir":
                return new WorkdirStep { Mark = mark, Path = DefinitionSyntax.NormaliseImagePath(Text(value)) };
            default:
                return new UserStep { Mark = mark, User = Text(value) };
        }
    }

    private static ConfigDefinition Config(YMapping config) => new()
    {
        Entrypoint = config.Get("entrypoint") is { } entrypoint ? Command(entrypoint) : null,
        Cmd = config.Get("cmd") is { } cmd ? Command(cmd) : null,
        Env = config.Get("env") is { } env ? Map(env) : null,
        Workdir = config.Get("workdir") is { } workdir ? DefinitionSyntax.NormaliseImagePath(Text(workdir)) : null,
        User = config.Get("user") is { } user ? Text(user) : null,
        Expose = config.Get("expose") is YSequence expose
            ? expose.Items.Select(p => Text(p).Contains('/') ? Text(p) : Text(p) + "/tcp").Distinct().ToList()
            : null,
        Labels = config.Get("labels") is { } labels ? Map(labels) : null,
        StopSignal = config.Get("stop-signal") is { } signal ? Text(signal) : null,
    };

    /// <summary>A string is a shell command line, run as <c>/bin/sh -c</c>.</summary>
    private static List<string> Command(YNode node) =>
        node is YScalar scalar ? ["/bin/sh", "-c", scalar.Value] : Strings(node);

    private static string Text(YNode node) => ((YScalar)node).Value;

    private static List<string> Strings(YNode node) =>
        node is YSequence list ? list.Items.Select(Text).ToList() : [Text(node)];

    private static List<string> Packages(YNode node) => Strings(node);

    /// <summary>Sorted by key (ordinal), as the model promises.</summary>
    private static List<KeyValuePair<string, string>> Map(YNode node) =>
        ((YMapping)node).Entries
            .Select(e => KeyValuePair.Create(((YScalar)e.Key).Value, Text(e.Value)))
            .OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .ToList();
}
