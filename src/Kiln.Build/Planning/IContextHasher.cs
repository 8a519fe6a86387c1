using Kiln.Oci;

namespace Kiln.Build.Planning;

/// <summary>Hashes the content of a build-context file; an interface so that a stat-keyed cache can stand in front.</summary>
public interface IContextHasher
{
    /// <summary>SHA-256 of the file's content, 64 lowercase hex digits.</summary>
    string HashFile(string absolutePath);
}

/// <summary>Reads and hashes every file, every time.</summary>
public sealed class Sha256ContextHasher : IContextHasher
{
    public string HashFile(string absolutePath)
    {
        using var stream = new FileStream(absolutePath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        return Convert.ToHexStringLower(Sha256Hasher.HashData(stream));
    }
}
