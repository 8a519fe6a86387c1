namespace Kiln.Build.Definition;

public sealed record DefinitionProblem(SourceMark Mark, string Message)
{
    public override string ToString() => $"{Mark}: {Message}";
}

/// <summary>A kiln.yaml that cannot be used. Carries every problem found, each with file, line and column.</summary>
public sealed class DefinitionException : Exception
{
    public DefinitionException(IReadOnlyList<DefinitionProblem> problems, Exception? inner = null)
        : base(string.Join(Environment.NewLine, problems.Select(p => p.ToString())), inner)
    {
        Problems = problems;
    }

    public IReadOnlyList<DefinitionProblem> Problems { get; }

    public static DefinitionException At(SourceMark mark, string message) => new([new DefinitionProblem(mark, message)]);
}
