namespace Kiln.Build.Definition;

internal sealed partial class DefinitionValidator
{
    /// <summary><c>services:</c> a map of service name to a map with <c>image</c> (an image of this file), <c>package</c>
    /// (a folder with DEBIAN/control, or a .deb file, of the build context), <c>config</c> and <c>test</c>.</summary>
    private void CheckServices(YNode node, HashSet<string> images)
    {
        if (node is not YMapping services)
        {
            Problem(node, $"`services` expects a map of service name to service, found {node.KindName}");
            return;
        }
        foreach (var entry in services.Entries)
        {
            if (!CheckKey(entry, services, "in `services`", null))
            {
                continue;
            }
            var name = entry.Name!;
            if (!DefinitionSyntax.ImageName().IsMatch(name))
            {
                Problem(entry.Key, $"service name `{name}` is not valid: use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit");
            }
            if (entry.Value is not YMapping service)
            {
                Problem(entry.Value, $"service `{name}` expects a map with `image` and `package`, found {entry.Value.KindName}");
                continue;
            }
            CheckKeys(service, $"in service `{name}`", DefinitionSyntax.ServiceKeys);
            if (RequiredString(service, "image", $"in service `{name}` (the image of this file it is installed on)") is { } image
                && !images.Contains(image.Value))
            {
                Problem(image, $"service `{name}`: no image named `{image.Value}` in this file");
            }
            if (RequiredString(service, "package", $"in service `{name}` (a folder with DEBIAN/control, or a .deb file)") is { } package)
            {
                CheckPackage(package);
            }
            if (service.Get("config") is { } config)
            {
                CheckStringMap(config, "config", isEnv: true, allowEmpty: true);
                if (config is YMapping values)
                {
                    foreach (var v in values.Entries.Select(e => e.Value).OfType<YScalar>().Where(v => v.Value.Contains('\n') || v.Value.Contains('\0')))
                    {
                        Problem(v, "a `config` value is one line: it is written as KEY=\"VALUE\" to /etc/default/SERVICE");
                    }
                }
            }
            if (service.Get("test") is { } test)
            {
                CheckTest(test);
            }
        }
    }

    private void CheckPackage(YScalar package)
    {
        var normalised = ContextPaths.Normalise(package.Value, out var error);
        if (package.Value.StartsWith('/'))
        {
            error = "is an absolute path; a package is relative to the build context";
        }
        error ??= normalised is null ? null : ContextPaths.CheckSource(_contextDir, normalised);
        if (error is null)
        {
            var full = ContextPaths.Combine(_contextDir, normalised!);
            if (Directory.Exists(full))
            {
                if (!File.Exists(Path.Combine(full, "DEBIAN", "control")))
                {
                    error = "is a folder without DEBIAN/control; a package folder is what `dpkg-deb --build` takes";
                }
            }
            else if (!full.EndsWith(".deb", StringComparison.Ordinal))
            {
                error = "is neither a folder nor a .deb file";
            }
        }
        if (error is not null)
        {
            Problem(package, $"`package: {package.Value}` {error}");
        }
    }
}
