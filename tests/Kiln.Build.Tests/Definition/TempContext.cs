using Kiln.Build.Definition;

namespace Kiln.Build.Tests.Definition;

/// <summary>A throwaway build context directory.</summary>
internal sealed class TempContext : IDisposable
{
    public TempContext()
    {
        Dir = Directory.CreateTempSubdirectory("kiln-test-").FullName;
    }

    public string Dir { get; }

    public string YamlPath => Path.Combine(Dir, "kiln.yaml");

    public TempContext File(string relative, string content, UnixFileMode? mode = null)
    {
        var full = Path.Combine(Dir, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        System.IO.File.WriteAllText(full, content);
        if (mode is { } m && !OperatingSystem.IsWindows())
        {
            System.IO.File.SetUnixFileMode(full, m);
        }

        return this;
    }

    public TempContext Yaml(string yaml) => File("kiln.yaml", yaml);

    public KilnFile Load() => DefinitionLoader.Load(Dir);

    public IReadOnlyList<DefinitionProblem> Problems(string yaml)
    {
        Yaml(yaml);
        var e = Assert.Throws<DefinitionException>(() => Load());
        return e.Problems;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
