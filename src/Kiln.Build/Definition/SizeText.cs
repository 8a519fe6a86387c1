namespace Kiln.Build.Definition;

/// <summary>Sizes as users write them in kiln.yaml and on the command line: 4G, 512M, 2GiB, or bytes.</summary>
public static class SizeText
{
    /// <summary>The number of bytes, or null when <paramref name="text"/> is not a positive size.</summary>
    public static long? Parse(string text) => DefinitionSyntax.ParseSize(text);
}
