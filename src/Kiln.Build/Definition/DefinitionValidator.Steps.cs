namespace Kiln.Build.Definition;

internal sealed partial class DefinitionValidator
{
    private void CheckSteps(YNode node)
    {
        if (node is YScalar { IsNull: true })
        {
            return;
        }

        if (node is not YSequence steps)
        {
            Problem(node, $"`steps` expects a list of steps, found {node.KindName}");
            return;
        }

        foreach (var step in steps.Items)
        {
            CheckStep(step);
        }
    }

    private void CheckStep(YNode node)
    {
        var kinds = string.Join(", ", DefinitionSyntax.StepKinds);
        if (node is not YMapping step)
        {
            Problem(node, $"a step expects a map with one of {kinds}; found {node.KindName}");
            return;
        }

        var allowed = DefinitionSyntax.StepKinds.Concat(DefinitionSyntax.StepOptions.Keys).ToArray();
        CheckKeys(step, "in a step", allowed);
        var kindEntries = step.Entries.Where(e => e.Name is { } n && DefinitionSyntax.StepKinds.Contains(n)).ToList();
        if (kindEntries.Count == 0)
        {
            Problem(step, $"a step needs one of {kinds}");
            return;
        }

        var kind = kindEntries[0].Name!;
        foreach (var extra in kindEntries.Skip(1).Where(e => e.Name != kind))
        {
            Problem(extra.Key, $"a step has exactly one of {kinds}; this one has both `{kind}` and `{extra.Name}`");
        }

        foreach (var entry in step.Entries)
        {
            if (entry.Name is { } option && DefinitionSyntax.StepOptions.TryGetValue(option, out var owner) && owner != kind)
            {
                Problem(entry.Key, $"`{option}` applies only to {owner} steps, not to {kind}");
            }
        }

        var value = kindEntries[0].Value;
        switch (kind)
        {
            case "packages":
                CheckPackageList(value, "packages", allowEmpty: false);
                break;
            case "run":
                CheckRun(step, value);
                break;
            case "copy":
                CheckCopy(step, value);
                break;
            case "env":
                CheckStringMap(value, "env", isEnv: true, allowEmpty: false);
                break;
            case "workdir":
                CheckAbsolutePath(value, "workdir");
                break;
            case "user":
                ExpectString(value, "user", "a user name or UID[:GID]");
                break;
        }
    }

    private void CheckRun(YMapping step, YNode command)
    {
        if (ExpectString(command, "run", "a shell command line") is { Value.Length: 0 })
        {
            Problem(command, "`run` expects a shell command line, found an empty string");
        }

        if (OptionalString(step, "network") is { } network && network.Value is not ("none" or "host"))
        {
            Problem(network, $"`network` must be none or host, found `{network.Value}`");
        }

        if (step.Get("cache") is { } cache)
        {
            foreach (var dir in StringOrList(cache, "cache", "a list of absolute directories"))
            {
                CheckAbsolutePath(dir, "cache");
            }
        }

        if (step.Get("secrets") is { } secrets)
        {
            CheckSecrets(secrets);
        }
    }

    private void CheckSecrets(YNode node)
    {
        if (node is not YSequence list)
        {
            Problem(node, $"`secrets` expects a list of {{id: ID, file: PATH}} or {{id: ID, env: VAR}}, found {node.KindName}");
            return;
        }
        var ids = new HashSet<string>(StringComparer.Ordinal);
        foreach (var item in list.Items)
        {
            if (item is not YMapping secret)
            {
                Problem(item, $"a secret expects a map {{id: ID, file: PATH}} or {{id: ID, env: VAR}}, found {item.KindName}");
                continue;
            }
            CheckKeys(secret, "in a secret", DefinitionSyntax.SecretKeys);
            if (secret.Get("id") is not { } idNode)
            {
                Problem(secret, "a secret needs an `id` (its file name under /run/secrets)");
            }
            else if (ExpectString(idNode, "id", "a secret id") is { } id)
            {
                if (!DefinitionSyntax.SecretId().IsMatch(id.Value))
                {
                    Problem(id, $"`{id.Value}` is not a valid secret id (letters, digits, '.', '_', '-'; at most 64)");
                }
                else if (!ids.Add(id.Value))
                {
                    Problem(id, $"secret `{id.Value}` is given twice in this step");
                }
            }
            var file = secret.Get("file");
            var env = secret.Get("env");
            if ((file is null) == (env is null))
            {
                Problem(secret, "a secret needs exactly one of `file` (a host file) or `env` (an environment variable)");
            }
            if (file is not null && ExpectString(file, "file", "a host file path") is { Value.Length: 0 } emptyFile)
            {
                Problem(emptyFile, "`file` expects a host file path, found an empty string");
            }
            if (env is not null && ExpectString(env, "env", "an environment variable name") is { } name && !DefinitionSyntax.EnvName().IsMatch(name.Value))
            {
                Problem(name, $"`{name.Value}` is not a valid environment variable name");
            }
        }
    }

    private void CheckCopy(YMapping step, YNode sources)
    {
        var items = StringOrList(sources, "copy", "a relative path or a list of relative paths");
        if (items.Count == 0 && sources is YSequence)
        {
            Problem(sources, "`copy` needs at least one source path");
        }

        foreach (var source in items)
        {
            var normalised = ContextPaths.Normalise(source.Value, out var error);
            error ??= normalised is null ? null : ContextPaths.CheckSource(_contextDir, normalised);
            if (error is not null)
            {
                Problem(source, $"copy source `{source.Value}` {error}");
            }
        }

        if (step.Find("to") is null)
        {
            Problem(step, "a copy step needs `to:` (an absolute destination path)");
        }
        else
        {
            CheckAbsolutePath(step.Get("to")!, "to");
        }

        if (OptionalString(step, "owner") is { } owner)
        {
            var match = DefinitionSyntax.Owner().Match(owner.Value);
            if (!match.Success || !int.TryParse(match.Groups[1].Value, out _)
                || (match.Groups[3].Success && !int.TryParse(match.Groups[3].Value, out _)))
            {
                Problem(owner, $"`owner` expects numeric \"UID[:GID]\" (e.g. \"0:0\"), found `{owner.Value}`");
            }
        }

        if (OptionalString(step, "mode") is { } mode && !DefinitionSyntax.OctalMode().IsMatch(mode.Value))
        {
            Problem(mode, $"`mode` expects an octal string such as \"0644\", found `{mode.Value}`");
        }
    }

    private void CheckConfig(YNode node)
    {
        if (node is YScalar { IsNull: true })
        {
            return;
        }

        if (node is not YMapping config)
        {
            Problem(node, $"`config` expects a map with {string.Join(", ", DefinitionSyntax.ConfigKeys)}; found {node.KindName}");
            return;
        }

        CheckKeys(config, "in `config`", DefinitionSyntax.ConfigKeys);
        foreach (var key in new[] { "entrypoint", "cmd" })
        {
            if (config.Get(key) is { } command)
            {
                StringOrList(command, key, "a list of strings or a shell command line", allowNull: false);
            }
        }

        if (config.Get("env") is { } env)
        {
            CheckStringMap(env, "env", isEnv: true, allowEmpty: true);
        }

        if (config.Get("labels") is { } labels)
        {
            CheckStringMap(labels, "labels", isEnv: false, allowEmpty: true);
        }

        if (config.Get("workdir") is { } workdir)
        {
            CheckAbsolutePath(workdir, "workdir");
        }

        OptionalString(config, "user");
        OptionalString(config, "stop-signal");
        if (config.Get("expose") is { } expose)
        {
            if (expose is not YSequence ports)
            {
                Problem(expose, $"`expose` expects a list of ports (8080, \"8080/tcp\", \"53/udp\"), found {expose.KindName}");
                return;
            }

            foreach (var port in ports.Items)
            {
                if (port is not YScalar { IsNull: false } scalar)
                {
                    Problem(port, $"a port in `expose` expects a number or \"PORT/tcp|udp\", found {port.KindName}");
                    continue;
                }

                var match = DefinitionSyntax.Port().Match(scalar.Value);
                if (!match.Success || !int.TryParse(match.Groups[1].Value, out var number) || number is < 1 or > 65535)
                {
                    Problem(port, $"`{scalar.Value}` is not a port: expected 1-65535, optionally with /tcp or /udp");
                }
            }
        }
    }

    private void CheckPackageList(YNode node, string key, bool allowEmpty)
    {
        var names = StringOrList(node, key, "a list of package names");
        if (names.Count == 0 && !allowEmpty && node is YSequence)
        {
            Problem(node, $"`{key}` needs at least one package");
        }

        foreach (var name in names.Where(n => !DefinitionSyntax.PackageName().IsMatch(n.Value)))
        {
            Problem(name, $"`{name.Value}` is not a valid package name (lowercase letters, digits, '+', '-', '.', optionally =VERSION)");
        }
    }

    private void CheckStringMap(YNode node, string key, bool isEnv, bool allowEmpty)
    {
        if (node is not YMapping map)
        {
            Problem(node, $"`{key}` expects a map of name to value, found {node.KindName}");
            return;
        }

        if (map.Entries.Count == 0 && !allowEmpty)
        {
            Problem(map, $"`{key}` needs at least one variable");
        }

        CheckKeys(map, $"in `{key}`", null);
        foreach (var entry in map.Entries)
        {
            if (entry.Name is { } name && isEnv && !DefinitionSyntax.EnvName().IsMatch(name))
            {
                Problem(entry.Key, $"`{name}` is not a valid environment variable name");
            }

            if (entry.Value is not YScalar value)
            {
                Problem(entry.Value, $"the value of `{entry.Name}` in `{key}` expects a string, found {entry.Value.KindName}");
            }
            else if (value.IsNull)
            {
                Problem(entry.Value, $"`{entry.Name}` in `{key}` has no value; write \"\" for an empty one");
            }
        }
    }

    private void CheckAbsolutePath(YNode node, string key)
    {
        if (ExpectString(node, key, "an absolute path") is { } path && !DefinitionSyntax.IsAbsoluteImagePath(path.Value))
        {
            Problem(node, $"`{key}` expects an absolute path without '..', found `{path.Value}`");
        }
    }
}
