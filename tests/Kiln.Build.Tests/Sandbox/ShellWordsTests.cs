using Kiln.Build.Sandbox;

namespace Kiln.Build.Tests.Sandbox;

public class ShellWordsTests
{
    private static readonly KeyValuePair<string, string>[] Path = [new("PATH", "/usr/bin:/bin")];

    [Theory]
    [InlineData("nginx -t", new[] { "nginx", "-t" })]
    [InlineData("/usr/sbin/nginx  -t", new[] { "/usr/sbin/nginx", "-t" })]
    [InlineData("curl -fsS http://127.0.0.1:8080/a,b@c%20+d", new[] { "curl", "-fsS", "http://127.0.0.1:8080/a,b@c%20+d" })]
    [InlineData("dpkg-query --showformat=x -W nginx-light", new[] { "dpkg-query", "--showformat=x", "-W", "nginx-light" })]
    [InlineData("./run_me", new[] { "./run_me" })]
    public void Plain_words_are_split_at_spaces(string command, string[] words) =>
        Assert.Equal(words, ShellWords.Plain(command, Path));

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("cat /etc/*.conf")] // a glob
    [InlineData("ls ~")] // a tilde
    [InlineData("echo $HOME")] // a variable, and a builtin
    [InlineData("nginx -t 2>&1")] // a redirection
    [InlineData("nginx -t && echo ok")] // an operator
    [InlineData("grep 'a b' /etc/x")] // quotes
    [InlineData("grep \"a\" /etc/x")]
    [InlineData("ls\t/")] // a tab
    [InlineData("ls /\nls /tmp")] // two commands
    [InlineData("nginx -t # comment")]
    [InlineData("FOO=bar env")] // an assignment
    [InlineData("test -f /etc/passwd")] // builtins, even where the image has a program of the name
    [InlineData("true")]
    [InlineData("printf x")]
    [InlineData("kill 1")]
    [InlineData("cd /tmp")]
    [InlineData("exec nginx")]
    [InlineData(". /etc/profile")]
    [InlineData("if")] // a reserved word
    [InlineData("time nginx -t")]
    public void Anything_the_shell_would_read_more_into_is_left_to_it(string command) =>
        Assert.Null(ShellWords.Plain(command, Path));

    [Fact]
    public void An_environment_with_bash_functions_leaves_every_command_to_the_shell() =>
        Assert.Null(ShellWords.Plain("nginx -t", [.. Path, new("BASH_FUNC_nginx%%", "() { echo not nginx; }")]));
}
