using System.Text.RegularExpressions;

namespace Kiln.Build.Execution;

/// <summary>Spots environment variables that look like credentials: `env` and `config.env` end up in the image
/// config, readable by anyone who has the image, so such a value gets a <see cref="BuildWarning"/>.</summary>
internal static partial class SecretLooking
{
    [GeneratedRegex("PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY|CREDENTIAL", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex SecretName();

    [GeneratedRegex(@"AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|glpat-[A-Za-z0-9_-]{20,}|xox[abprs]-[A-Za-z0-9-]{10,}|sk_live_[A-Za-z0-9]{16,}|-----BEGIN [A-Z ]*PRIVATE KEY-----", RegexOptions.CultureInvariant)]
    private static partial Regex SecretValue();

    /// <summary>Why the variable looks secret, or null when it does not.</summary>
    public static string? Why(string name, string value)
    {
        if (value.Length == 0)
        {
            return null;
        }
        if (SecretValue().IsMatch(value))
        {
            return "its value looks like a credential";
        }
        // NAME_FILE=/run/secrets/x is the right way to pass one; short values are flags, not secrets.
        bool pointsElsewhere = name.EndsWith("_FILE", StringComparison.OrdinalIgnoreCase) || name.EndsWith("_PATH", StringComparison.OrdinalIgnoreCase);
        if (!pointsElsewhere && value.Length >= 8 && SecretName().IsMatch(name))
        {
            return "its name says it holds a secret";
        }
        return null;
    }

    public static IEnumerable<string> Warnings(string image, string where, IEnumerable<KeyValuePair<string, string>>? variables)
    {
        foreach (var (name, value) in variables ?? [])
        {
            if (Why(name, value) is { } why)
            {
                yield return $"{image}: {where} sets {name}, and {why}; env is stored in the image config for anyone who has the image " +
                    "(give it to the run step that needs it with `secrets:` instead)";
            }
        }
    }
}
