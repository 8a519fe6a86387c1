namespace Kiln.Oci.Registry;

/// <summary>A user name and secret for one registry. The secret is never part of <see cref="ToString"/>, so a
/// credential written to a log or a message by mistake shows only that there is one.</summary>
public sealed class RegistryCredential
{
    public RegistryCredential(string username, string secret)
    {
        Username = username;
        Secret = secret;
    }

    public string Username { get; }

    public string Secret { get; }

    /// <summary>A Docker identity token (<c>identitytoken</c>): sent to a token server as an OAuth2 refresh token
    /// instead of the user name and password.</summary>
    public string? IdentityToken { get; init; }

    public override string ToString() => "RegistryCredential(***)";
}
