namespace Kiln.Cli;

/// <summary>The environment variables a command reads. A kiln process reads its own. A caller that runs commands
/// in-process (the fast test tier runs many at once in one process) gives each call its own set, so that one call's
/// KILN_STORE or TERM is not another's. The set flows with the call's async context.</summary>
public static class CliEnvironment
{
    private static readonly AsyncLocal<IReadOnlyDictionary<string, string?>?> s_given = new();

    /// <summary>The variable's value, or null when it is unset.</summary>
    public static string? Get(string name) =>
#pragma warning disable RS0030 // the one place that reads the process's environment
        s_given.Value is { } given ? given.GetValueOrDefault(name) : Environment.GetEnvironmentVariable(name);
#pragma warning restore RS0030

    /// <summary>Makes <paramref name="environment"/> the environment of the calling async context (and what it
    /// starts) from now on; the caller's own context is untouched once it returns.</summary>
    internal static void Use(IReadOnlyDictionary<string, string?> environment) => s_given.Value = environment;
}
