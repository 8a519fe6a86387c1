namespace Kiln.Build.Store;

/// <summary>File-system routines the store needs: atomic replacement and a tree delete that copes with
/// what overlay upper dirs and extracted layers contain.</summary>
internal static class StoreFs
{
    /// <summary>Writes <paramref name="bytes"/> to <paramref name="tempPath"/>, fsyncs it, renames it over
    /// <paramref name="target"/> (same filesystem) and fsyncs the target's directory.</summary>
    public static async Task AtomicWriteAsync(string tempPath, string target, ReadOnlyMemory<byte> bytes, CancellationToken ct)
    {
        try
        {
            var fs = new FileStream(tempPath, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                Share = FileShare.None,
                Options = FileOptions.Asynchronous,
            });
            await using (fs.ConfigureAwait(false))
            {
                await fs.WriteAsync(bytes, ct).ConfigureAwait(false);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tempPath, target, overwrite: true);
            Native.FsyncDirectory(Path.GetDirectoryName(target)!);
        }
        catch
        {
            TryDeleteFile(tempPath);
            throw;
        }
    }

    public static void TryDeleteFile(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>Deletes a file, link, device or directory tree. Never follows symbolic links; makes
    /// read-only and mode-000 directories writable before emptying them.</summary>
    public static void DeleteTree(string path)
    {
        FileSystemInfo info = new FileInfo(path);
        if (!info.Exists)
        {
            var dir = new DirectoryInfo(path);
            if (!dir.Exists)
            {
                if (info.LinkTarget is null)
                {
                    return;
                }
            }
            else
            {
                info = dir;
            }
        }
        DeleteEntry(info, Kiln.Build.Native.LibC.Lstat(info.FullName).Device);
    }

    private static void DeleteEntry(FileSystemInfo info, ulong device)
    {
        bool isRealDirectory = info is DirectoryInfo && info.LinkTarget is null;
        if (!isRealDirectory)
        {
            // unlink(2): files, symlinks (to dirs too), char devices (overlay whiteouts), fifos, sockets.
            File.Delete(info.FullName);
            return;
        }
        var dir = (DirectoryInfo)info;
        // Never delete across a mount point (a leaked bind mount of /dev or /proc, say): refuse instead.
        if (Kiln.Build.Native.LibC.Lstat(dir.FullName).Device != device)
        {
            throw new IOException($"'{dir.FullName}' is a mount point; not deleting across it (unmount it first)");
        }
        MakeOwnerWritable(dir);
        foreach (var child in dir.EnumerateFileSystemInfos("*", new EnumerationOptions
        {
            RecurseSubdirectories = false,
            AttributesToSkip = 0,
            IgnoreInaccessible = false,
            ReturnSpecialDirectories = false,
        }))
        {
            DeleteEntry(child, device);
        }
        Directory.Delete(dir.FullName, recursive: false);
    }

    private static void MakeOwnerWritable(DirectoryInfo dir)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }
        const UnixFileMode need = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        var mode = dir.UnixFileMode;
        if ((mode & need) != need)
        {
            dir.UnixFileMode = mode | need;
        }
    }

    /// <summary>Bytes held by the regular files of a tree (links not followed).</summary>
    public static long TreeSize(string path)
    {
        long total = 0;
        var dir = new DirectoryInfo(path);
        if (!dir.Exists)
        {
            return 0;
        }
        foreach (var entry in dir.EnumerateFileSystemInfos("*", new EnumerationOptions
        {
            RecurseSubdirectories = true,
            AttributesToSkip = 0,
            IgnoreInaccessible = true,
        }))
        {
            if (entry is FileInfo f && f.LinkTarget is null)
            {
                try
                {
                    total += f.Length;
                }
                catch (IOException)
                {
                }
            }
        }
        return total;
    }
}
