namespace Kiln.Cli;

/// <summary>Bad command-line usage: exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);
