using Kiln.Build.Layers;

namespace Kiln.Build.Sandbox;

/// <summary>Builds the sandbox's mount points as an extra read-only layer between the image and the step's
/// upper dir, so that creating a mount point never writes into the step's layer.</summary>
internal static class MountSkeleton
{
    private const string PolicyRcD = "#!/bin/sh\n# written by kiln: services are not started while building an image\nexit 101\n";

    /// <summary>Fills <paramref name="skeleton"/> and returns the bind mounts to make (checked against the image).</summary>
    public static IReadOnlyList<BindMount> Prepare(string skeleton, SandboxSpec spec)
    {
        var lowers = spec.LowerDirsTopFirst;
        foreach (var dir in new[] { "/proc", "/sys", "/dev" })
        {
            if (PathIsPlain(lowers, dir))
            {
                MakeDir(skeleton, lowers, dir);
            }
        }
        if (spec.ResolvConf && PathIsPlain(lowers, "/etc/resolv.conf") && File.Exists("/etc/resolv.conf"))
        {
            MakeDir(skeleton, lowers, "/etc");
            File.Copy("/etc/resolv.conf", Path.Combine(skeleton, "etc/resolv.conf"), overwrite: true);
            File.SetUnixFileMode(Path.Combine(skeleton, "etc/resolv.conf"), (UnixFileMode)Convert.ToInt32("644", 8));
        }
        if (spec.PolicyRcD && PathIsPlain(lowers, "/usr/sbin/policy-rc.d"))
        {
            MakeDir(skeleton, lowers, "/usr/sbin");
            var file = Path.Combine(skeleton, "usr/sbin/policy-rc.d");
            File.WriteAllText(file, PolicyRcD);
            File.SetUnixFileMode(file, (UnixFileMode)Convert.ToInt32("755", 8));
        }
        foreach (var (name, script) in spec.SkeletonScripts)
        {
            if (name.Contains('/') || name is "" or "." or "..")
            {
                throw SandboxException.SetupFailed($"skeleton script name '{name}' is not a file name");
            }
            var file = Path.Combine(skeleton, name);
            File.WriteAllText(file, script);
            File.SetUnixFileMode(file, (UnixFileMode)Convert.ToInt32("755", 8));
        }
        if (spec.SecretFiles.Count > 0)
        {
            if (!PathIsPlain(lowers, SandboxSpec.SecretsDir) || SafePath.Lookup(lowers, SandboxSpec.SecretsDir) is { Kind: not ImageEntryKind.Directory })
            {
                throw SandboxException.SetupFailed($"mount point '{SandboxSpec.SecretsDir}' passes through a symlink or is not a directory in the image");
            }
            MakeDir(skeleton, lowers, SandboxSpec.SecretsDir);
        }
        foreach (var bind in spec.Binds)
        {
            if (!bind.ImagePath.StartsWith('/') || bind.ImagePath.Split('/').Any(c => c is "." or ".."))
            {
                throw SandboxException.SetupFailed($"mount point '{bind.ImagePath}' must be an absolute path without '.' or '..'");
            }
            if (!PathIsPlain(lowers, bind.ImagePath))
            {
                throw SandboxException.SetupFailed($"mount point '{bind.ImagePath}' passes through a symlink or a file in the image");
            }
            if (Directory.Exists(bind.HostPath))
            {
                MakeDir(skeleton, lowers, bind.ImagePath);
            }
            else
            {
                MakeDir(skeleton, lowers, ParentOf(bind.ImagePath));
                var target = Path.Combine(skeleton, bind.ImagePath.TrimStart('/'));
                if (!File.Exists(target))
                {
                    File.WriteAllBytes(target, []);
                }
            }
        }
        return spec.Binds;
    }

    private static string ParentOf(string imagePath)
    {
        int slash = imagePath.TrimEnd('/').LastIndexOf('/');
        return slash <= 0 ? "/" : imagePath[..slash];
    }

    /// <summary>True when no component of the path is a symlink or a non-directory (but the last may be a file
    /// or missing) in the topmost layer that holds it.</summary>
    private static bool PathIsPlain(IReadOnlyList<string> lowers, string imagePath)
    {
        var parts = imagePath.Split('/', StringSplitOptions.RemoveEmptyEntries);
        var prefix = "";
        for (int i = 0; i < parts.Length; i++)
        {
            prefix = prefix + "/" + parts[i];
            var entry = SafePath.Lookup(lowers, prefix);
            if (entry is null)
            {
                return true;
            }
            if (entry.Kind == ImageEntryKind.Symlink)
            {
                return false;
            }
            if (i < parts.Length - 1 && entry.Kind != ImageEntryKind.Directory)
            {
                return false;
            }
        }
        return true;
    }

    private static void MakeDir(string skeleton, IReadOnlyList<string> lowers, string imagePath)
    {
        var parts = imagePath.Split('/', StringSplitOptions.RemoveEmptyEntries);
        var prefix = "";
        foreach (var part in parts)
        {
            prefix = prefix + "/" + part;
            var target = Path.Combine(skeleton, prefix.TrimStart('/'));
            if (Directory.Exists(target))
            {
                continue;
            }
            Directory.CreateDirectory(target);
            // A skeleton directory shadows the image's in the merged view: give it the image's mode.
            var existing = SafePath.Lookup(lowers, prefix);
            File.SetUnixFileMode(target, (UnixFileMode)(existing is { Kind: ImageEntryKind.Directory } dir ? dir.Mode : Convert.ToUInt32("755", 8)));
        }
    }
}
