namespace Kiln.Build.Sandbox;

/// <summary>Whether <c>/bin/sh -c COMMAND</c> would only split COMMAND at spaces and run the program its first word
/// names: then kiln runs that program itself and spares the shell's start (about a millisecond here: an exec of the
/// shell, its dynamic loading, a fork).</summary>
public static class ShellWords
{
    /// <summary>Names some POSIX shell (dash, bash, busybox ash) runs itself, or parses as syntax: a command starting
    /// with one of them is left to the shell, whether the image has a program of that name or not.</summary>
    private static readonly HashSet<string> ShellNames = new(StringComparer.Ordinal)
    {
        ".", ":", "alias", "bg", "bind", "break", "builtin", "caller", "case", "cd", "chdir", "command", "compgen",
        "complete", "compopt", "continue", "coproc", "declare", "dirs", "disown", "do", "done", "echo", "elif", "else",
        "enable", "esac", "eval", "exec", "exit", "export", "false", "fc", "fg", "fi", "for", "function", "getopts",
        "hash", "help", "history", "if", "in", "jobs", "kill", "let", "local", "logout", "mapfile", "popd", "printf",
        "pushd", "pwd", "read", "readarray", "readonly", "return", "select", "set", "shift", "shopt", "source",
        "suspend", "test", "then", "time", "times", "trap", "true", "type", "typeset", "ulimit", "umask", "unalias",
        "unset", "until", "wait", "while",
    };

    /// <summary>The words of <paramref name="command"/> when it is plain: words of letters, digits and
    /// <c>_ . / , : @ % + - =</c> (no quote, variable, glob, redirection, operator, comment or tilde), separated by
    /// spaces, the first neither an assignment nor a name the shell keeps for itself; null otherwise. An environment
    /// that defines shell functions (bash's <c>BASH_FUNC_</c> variables) leaves every command to the shell.</summary>
    public static string[]? Plain(string command, IEnumerable<KeyValuePair<string, string>> environment)
    {
        var words = command.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (words.Length == 0 || words.Any(w => !w.All(IsPlain)) || words[0].Contains('=') || ShellNames.Contains(words[0])
            || environment.Any(e => e.Key.StartsWith("BASH_FUNC_", StringComparison.Ordinal)))
        {
            return null;
        }
        return words;
    }

    private static bool IsPlain(char c) => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '/' or ',' or ':' or '@' or '%' or '+' or '-' or '=';
}
