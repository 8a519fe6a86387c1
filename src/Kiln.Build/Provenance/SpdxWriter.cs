using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Kiln.Build.Layers;
using Kiln.Build.Testing;
using Kiln.Oci;

namespace Kiln.Build.Provenance;

/// <summary>An SPDX 2.3 JSON document of an image's Debian packages, from its dpkg database: each installed package
/// with its version, source, maintainer (as supplier), the license its machine-readable copyright file declares
/// (NOASSERTION otherwise), a purl, and the regular files dpkg lists for it with their SHA-1 and SHA-256 (read from the
/// image) and the MD5 dpkg recorded. The same image and time give the same bytes.</summary>
public static class SpdxWriter
{
    private const string NoAssertion = "NOASSERTION";

    /// <summary>The SBOM of the image whose layer dirs are <paramref name="layersTopFirst"/>; null when the image has no
    /// dpkg status file.</summary>
    public static byte[]? Write(IReadOnlyList<string> layersTopFirst, string imageName, Digest manifest, DateTimeOffset created, string tool)
    {
        var files = new ImageFiles(layersTopFirst);
        if (files.ReadText("/var/lib/dpkg/status") is not { } status)
        {
            return null;
        }
        var packages = DpkgDatabase.ParseStatus(status);
        var licenses = new SortedDictionary<string, string>(StringComparer.Ordinal);
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("spdxVersion", "SPDX-2.3");
            w.WriteString("dataLicense", "CC0-1.0");
            w.WriteString("SPDXID", "SPDXRef-DOCUMENT");
            w.WriteString("name", imageName);
            w.WriteString("documentNamespace", $"urn:kiln:spdx:{Uri.EscapeDataString(imageName)}:{manifest.Value}");
            w.WriteStartObject("creationInfo");
            w.WriteString("created", created.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture));
            w.WriteStartArray("creators");
            w.WriteStringValue("Tool: " + tool);
            w.WriteEndArray();
            w.WriteEndObject();

            var relationships = new List<(string From, string Type, string To)>();
            var fileEntries = new List<(string Id, string Path, string Sha1, string Sha256, string? Md5)>();
            w.WriteStartArray("packages");
            for (int i = 0; i < packages.Count; i++)
            {
                var p = packages[i];
                string id = $"SPDXRef-Package-{i + 1}-{IdSafe(p.Name)}";
                relationships.Add(("SPDXRef-DOCUMENT", "DESCRIBES", id));
                var pkgFiles = PackageFiles(files, p, $"SPDXRef-File-{i + 1}-");
                foreach (var f in pkgFiles)
                {
                    relationships.Add((id, "CONTAINS", f.Id));
                }
                fileEntries.AddRange(pkgFiles);
                var declared = files.ReadText($"/usr/share/doc/{p.Name}/copyright") is { } copyright
                    ? LicenseExpression(DpkgDatabase.CopyrightLicenses(copyright), licenses)
                    : null;

                w.WriteStartObject();
                w.WriteString("name", p.Name);
                w.WriteString("SPDXID", id);
                w.WriteString("versionInfo", p.Version);
                w.WriteString("supplier", Supplier(p.Maintainer));
                w.WriteString("downloadLocation", NoAssertion);
                w.WriteBoolean("filesAnalyzed", pkgFiles.Count > 0);
                if (pkgFiles.Count > 0)
                {
                    w.WriteStartObject("packageVerificationCode");
                    w.WriteString("packageVerificationCodeValue", VerificationCode(pkgFiles.Select(f => f.Sha1)));
                    w.WriteEndObject();
                }
                w.WriteString("sourceInfo", $"built package from: {p.Source} {p.SourceVersion ?? p.Version}");
                w.WriteString("licenseConcluded", NoAssertion);
                w.WriteString("licenseDeclared", declared ?? NoAssertion);
                w.WriteString("copyrightText", NoAssertion);
                w.WriteStartArray("externalRefs");
                w.WriteStartObject();
                w.WriteString("referenceCategory", "PACKAGE-MANAGER");
                w.WriteString("referenceType", "purl");
                w.WriteString("referenceLocator", $"pkg:deb/debian/{Uri.EscapeDataString(p.Name)}@{Uri.EscapeDataString(p.Version)}?arch={Uri.EscapeDataString(p.Architecture)}");
                w.WriteEndObject();
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();

            w.WriteStartArray("files");
            foreach (var f in fileEntries)
            {
                w.WriteStartObject();
                w.WriteString("fileName", "." + f.Path);
                w.WriteString("SPDXID", f.Id);
                w.WriteStartArray("checksums");
                Checksum(w, "SHA1", f.Sha1);
                Checksum(w, "SHA256", f.Sha256);
                if (f.Md5 is not null)
                {
                    Checksum(w, "MD5", f.Md5);
                }
                w.WriteEndArray();
                w.WriteString("licenseConcluded", NoAssertion);
                w.WriteString("copyrightText", NoAssertion);
                w.WriteEndObject();
            }
            w.WriteEndArray();

            if (licenses.Count > 0)
            {
                w.WriteStartArray("hasExtractedLicensingInfos");
                foreach (var (id, name) in licenses)
                {
                    w.WriteStartObject();
                    w.WriteString("licenseId", id);
                    w.WriteString("name", name);
                    w.WriteString("extractedText", $"The license Debian's machine-readable copyright files name '{name}'; its text is in the package's /usr/share/doc/PACKAGE/copyright.");
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }

            w.WriteStartArray("relationships");
            foreach (var (from, type, to) in relationships)
            {
                w.WriteStartObject();
                w.WriteString("spdxElementId", from);
                w.WriteString("relationshipType", type);
                w.WriteString("relatedSpdxElement", to);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        ms.WriteByte((byte)'\n');
        return ms.ToArray();
    }

    private static List<(string Id, string Path, string Sha1, string Sha256, string? Md5)> PackageFiles(ImageFiles files, DpkgPackage p, string idPrefix)
    {
        // Multi-arch "same" packages keep their lists as NAME:ARCH.list.
        var list = files.ReadText($"/var/lib/dpkg/info/{p.Name}:{p.Architecture}.list") ?? files.ReadText($"/var/lib/dpkg/info/{p.Name}.list");
        var md5 = files.ReadText($"/var/lib/dpkg/info/{p.Name}:{p.Architecture}.md5sums") ?? files.ReadText($"/var/lib/dpkg/info/{p.Name}.md5sums");
        var sums = md5 is null ? new Dictionary<string, string>() : DpkgDatabase.ParseMd5Sums(md5);
        var result = new List<(string, string, string, string, string?)>();
        if (list is null)
        {
            return result;
        }
        foreach (var path in list.Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith('/')).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
        {
            ImageEntry? entry;
            try
            {
                entry = files.Entry(path, follow: false);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
            {
                continue;
            }
            if (entry is not { Kind: ImageEntryKind.File })
            {
                continue; // directories, links, and files a later step removed
            }
            var (sha1, sha256) = Hash(entry.HostPath);
            result.Add(($"{idPrefix}{result.Count + 1}", path, sha1, sha256, sums.GetValueOrDefault(path)));
        }
        return result;
    }

    private static (string Sha1, string Sha256) Hash(string hostPath)
    {
        using var sha1 = IncrementalHash.CreateHash(HashAlgorithmName.SHA1);
        using var sha256 = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var stream = new FileStream(hostPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        var buffer = new byte[1 << 16];
        int n;
        while ((n = stream.Read(buffer)) > 0)
        {
            sha1.AppendData(buffer, 0, n);
            sha256.AppendData(buffer, 0, n);
        }
        return (Convert.ToHexStringLower(sha1.GetHashAndReset()), Convert.ToHexStringLower(sha256.GetHashAndReset()));
    }

    /// <summary>SPDX 2.3's package verification code: SHA-1 of the files' sorted SHA-1s, concatenated.</summary>
    private static string VerificationCode(IEnumerable<string> sha1s) =>
        Convert.ToHexStringLower(SHA1.HashData(Encoding.ASCII.GetBytes(string.Concat(sha1s.Order(StringComparer.Ordinal)))));

    private static void Checksum(Utf8JsonWriter w, string algorithm, string value)
    {
        w.WriteStartObject();
        w.WriteString("algorithm", algorithm);
        w.WriteString("checksumValue", value);
        w.WriteEndObject();
    }

    /// <summary>"Name &lt;email&gt;" as SPDX's "Organization: Name (email)".</summary>
    internal static string Supplier(string? maintainer)
    {
        if (string.IsNullOrWhiteSpace(maintainer))
        {
            return NoAssertion;
        }
        int lt = maintainer.IndexOf('<');
        int gt = maintainer.IndexOf('>', Math.Max(lt, 0));
        var name = (lt < 0 ? maintainer : maintainer[..lt]).Trim();
        var email = lt >= 0 && gt > lt ? maintainer[(lt + 1)..gt].Trim() : "";
        return "Organization: " + (name.Length == 0 ? email : name) + (email.Length == 0 ? "" : $" ({email})");
    }

    /// <summary>Debian's license short names (each perhaps "A or B", "A and B") as one SPDX expression of LicenseRefs,
    /// AND-ed across the file's paragraphs; null when there are none. Each LicenseRef used is added to
    /// <paramref name="refs"/> with its Debian name.</summary>
    internal static string? LicenseExpression(IReadOnlyList<string> names, IDictionary<string, string> refs)
    {
        var parts = new List<(string Bare, string Grouped)>();
        foreach (var name in names)
        {
            var alternatives = SplitWords(name, " or ").Select(alt =>
            {
                var all = SplitWords(alt, " and ").Select(n => LicenseRef(n, refs)).ToList();
                return all.Count == 1 ? all[0] : "(" + string.Join(" AND ", all) + ")";
            }).ToList();
            var bare = string.Join(" OR ", alternatives);
            var part = (bare, alternatives.Count == 1 ? bare : "(" + bare + ")");
            if (!parts.Contains(part))
            {
                parts.Add(part);
            }
        }
        return parts.Count switch
        {
            0 => null,
            1 => parts[0].Bare,
            _ => string.Join(" AND ", parts.Select(p => p.Grouped)),
        };
    }

    private static IEnumerable<string> SplitWords(string text, string word) =>
        text.Split(word, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Where(s => s.Length > 0);

    private static string LicenseRef(string debianName, IDictionary<string, string> refs)
    {
        var id = "LicenseRef-" + IdSafe(debianName.Replace("+", "-or-later", StringComparison.Ordinal));
        refs.TryAdd(id, debianName);
        return id;
    }

    /// <summary>Only what SPDX identifiers allow: letters, digits, '.' and '-'.</summary>
    private static string IdSafe(string text)
    {
        var sb = new StringBuilder(text.Length);
        foreach (char c in text)
        {
            sb.Append(char.IsAsciiLetterOrDigit(c) || c is '.' or '-' ? c : '-');
        }
        return sb.ToString();
    }
}
