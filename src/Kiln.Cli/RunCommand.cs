using Kiln.Build.Definition;
using Kiln.Build.Local;

namespace Kiln.Cli;

/// <summary><c>kiln run IMAGE</c>: the image as an instance, its ports published on the host, until it exits or is
/// interrupted; with --watch, rebuilt and restarted on each change of its build context.</summary>
internal static class RunCommand
{
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        // What follows `--` is the command, not options of kiln run.
        int dashes = Array.IndexOf(args, "--");
        var own = dashes < 0 ? args : args[..dashes];
        IReadOnlyList<string>? cmd = dashes < 0 ? null : args[(dashes + 1)..];
        var a = Arguments.Parse(own, "run", ["--help", "--systemd", "--watch", "--no-outputs"], ["--publish", "--file"],
            new Dictionary<string, string> { ["-p"] = "--publish", ["-f"] = "--file", ["-h"] = "--help" });
        if (a.Has("--help"))
        {
            stdout.WriteLine(Help.Run);
            return ExitCodes.Ok;
        }
        if (a.Positionals.Count != 1)
        {
            throw new UsageException("kiln run: takes one IMAGE (see 'kiln run --help')");
        }
        if (cmd is { Count: 0 })
        {
            throw new UsageException("kiln run: `--` must be followed by a command");
        }
        var image = a.Positionals[0];
        IReadOnlyList<PublishedPort>? ports = a.All("--publish").Count == 0 ? null : [.. a.All("--publish").Select(PublishedPort.Parse)];
        var file = a.Last("--file");
        if (file is not null || a.Has("--watch"))
        {
            PathArguments.Definition("run", file ?? ".");
        }
        bool systemd = a.Has("--systemd") || BootsSystemd(file, image);
        if (systemd && cmd is not null)
        {
            throw new UsageException("kiln run: a command after `--` does not go with systemd (the image's init is started)");
        }
        var options = new RunOptions { Ports = ports, Systemd = systemd, Cmd = cmd, Output = stdout.WriteLine };
        if (a.Has("--watch"))
        {
            using var remoteCache = new CacheArguments([], null, insecure: false);
            var build = BuildCommand.Options(a, remoteCache) with { Targets = [image] };
            return await WatchLoop.RunAsync(file ?? ".", build, !a.Has("--no-outputs"), new WatchedRun(image, options), stdout, stderr, ct).ConfigureAwait(false);
        }
        if (a.Has("--no-outputs"))
        {
            throw new UsageException("kiln run: --no-outputs goes with --watch");
        }
        await using var run = await LocalRun.StartAsync(Cli.StoreRoot(), image, options, ct).ConfigureAwait(false);
        if (!run.Exited.IsCompleted)
        {
            stderr.WriteLine($"kiln run: {image} {WatchLoop.Short(run.Digest)} is running{Published(run)} (Ctrl-C stops it)");
        }
        try
        {
            return await run.Exited.WaitAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Stopped by disposing (await using): nothing of it stays.
            stderr.WriteLine($"kiln run: stopping {image}");
            throw;
        }
    }

    /// <summary>", serving 127.0.0.1:8080 -> 8080, ..." or nothing.</summary>
    internal static string Published(LocalRun run) =>
        run.Ports.Count == 0 ? "" : ", publishing " + string.Join(", ", run.Ports.Select(p => p.ToString()));

    /// <summary>The image's `boot: systemd`, read from the kiln.yaml given with -f (or ./kiln.yaml when there is one
    /// that defines the image): a stored image does not say how it boots.</summary>
    private static bool BootsSystemd(string? file, string image)
    {
        var path = file ?? ".";
        var yaml = Directory.Exists(path) ? Path.Combine(path, "kiln.yaml") : path;
        if (file is null && !File.Exists(yaml))
        {
            return false;
        }
        var definition = DefinitionLoader.Load(path);
        return definition.Images.FirstOrDefault(i => i.Name == image) is { Boot: BootMode.Systemd };
    }
}
