namespace Kiln.Cli.Tests;

/// <summary>A temporary folder removed with its contents (also read-only dirs) on dispose.</summary>
public sealed class TempDir : IDisposable
{
    public TempDir(string prefix = "kiln-test")
    {
        Path = Directory.CreateTempSubdirectory(prefix + "-").FullName;
    }

    public string Path { get; }

    public string Sub(string relative) => System.IO.Path.Combine(Path, relative);

    public void Dispose()
    {
        // rm copes with mode-000 dirs, whiteout device nodes and never follows symlinks.
        KilnProcess.Tool("rm", "-rf", "--one-file-system", Path);
    }
}
