namespace Kiln.Build.Definition;

/// <summary>Reads a kiln.yaml: parse (YAML to nodes with marks), validate (every problem, nothing
/// changed), normalise (the immutable <see cref="KilnFile"/>).</summary>
public static class DefinitionLoader
{
    public static readonly IReadOnlyList<string> FileNames = ["kiln.yaml", "kiln.yml"];

    /// <param name="path">A kiln.yaml file, or a directory holding kiln.yaml (or kiln.yml).</param>
    /// <exception cref="DefinitionException">with every problem found, each with file, line and column.</exception>
    /// <exception cref="FileNotFoundException">when there is no such file, or the directory holds no kiln.yaml.</exception>
    public static KilnFile Load(string path)
    {
        var file = FindFile(path);
        using var reader = new StreamReader(file);
        return Load(file, reader);
    }

    /// <summary>Loads from text; <paramref name="file"/> names it in problems and its folder is the build context.</summary>
    public static KilnFile Load(string file, TextReader text)
    {
        file = Path.GetFullPath(file);
        var contextDir = Path.GetDirectoryName(file) ?? "/";
        var root = YamlDocumentParser.Parse(file, text);
        var problems = DefinitionValidator.Validate(root, file, contextDir);
        if (problems.Count > 0)
        {
            throw new DefinitionException(problems);
        }

        return DefinitionNormaliser.Normalise(root!, file, contextDir);
    }

    /// <summary>The kiln.yaml that <paramref name="path"/> names (the file, or the one in the folder), as a full path.</summary>
    /// <exception cref="FileNotFoundException">when there is no such file, or the directory holds no kiln.yaml.</exception>
    public static string FindFile(string path)
    {
        var full = Path.GetFullPath(path);
        if (File.Exists(full))
        {
            return full;
        }

        if (Directory.Exists(full))
        {
            foreach (var name in FileNames)
            {
                var candidate = Path.Combine(full, name);
                if (File.Exists(candidate))
                {
                    return candidate;
                }
            }

            throw new FileNotFoundException($"no {string.Join(" or ", FileNames)} in {full}", Path.Combine(full, FileNames[0]));
        }

        throw new FileNotFoundException($"no such file or directory: {full}", full);
    }
}
