using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Kiln.Build.Tests.Provenance;

/// <summary>The SPDX 2.3 rules a document must follow that a JSON schema check would catch, and those of the spec's
/// text it would not (verification codes, references that resolve). Kiln's own check: not an independent tool.</summary>
public static class SpdxStructure
{
    public static void AssertValid(JsonElement root)
    {
        Assert.Equal("SPDX-2.3", root.GetProperty("spdxVersion").GetString());
        Assert.Equal("CC0-1.0", root.GetProperty("dataLicense").GetString());
        Assert.Equal("SPDXRef-DOCUMENT", root.GetProperty("SPDXID").GetString());
        Assert.False(string.IsNullOrEmpty(root.GetProperty("name").GetString()));
        Assert.True(Uri.TryCreate(root.GetProperty("documentNamespace").GetString(), UriKind.Absolute, out _));
        var info = root.GetProperty("creationInfo");
        Assert.Matches("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$", info.GetProperty("created").GetString()!);
        Assert.All(info.GetProperty("creators").EnumerateArray(), c => Assert.Matches("^(Tool|Organization|Person): .+", c.GetString()!));

        var ids = new HashSet<string>(StringComparer.Ordinal) { "SPDXRef-DOCUMENT" };
        var licenseRefs = root.TryGetProperty("hasExtractedLicensingInfos", out var extracted)
            ? extracted.EnumerateArray().Select(l => l.GetProperty("licenseId").GetString()!).ToHashSet(StringComparer.Ordinal)
            : [];
        Assert.All(licenseRefs, id => Assert.Matches("^LicenseRef-[A-Za-z0-9.-]+$", id));
        var fileSha1 = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var f in root.GetProperty("files").EnumerateArray())
        {
            var id = f.GetProperty("SPDXID").GetString()!;
            Assert.Matches("^SPDXRef-[A-Za-z0-9.-]+$", id);
            Assert.True(ids.Add(id), $"duplicate SPDXID {id}");
            Assert.False(string.IsNullOrEmpty(f.GetProperty("fileName").GetString()));
            var sums = f.GetProperty("checksums").EnumerateArray().ToDictionary(c => c.GetProperty("algorithm").GetString()!, c => c.GetProperty("checksumValue").GetString()!);
            Assert.Matches("^[0-9a-f]{40}$", sums["SHA1"]); // SPDX 2.3 makes SHA1 mandatory for a file
            Assert.Matches("^[0-9a-f]{64}$", sums["SHA256"]);
            if (sums.TryGetValue("MD5", out var md5))
            {
                Assert.Matches("^[0-9a-f]{32}$", md5);
            }
            fileSha1[id] = sums["SHA1"];
        }
        var contains = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var r in root.GetProperty("relationships").EnumerateArray())
        {
            if (r.GetProperty("relationshipType").GetString() == "CONTAINS")
            {
                var from = r.GetProperty("spdxElementId").GetString()!;
                (contains.TryGetValue(from, out var l) ? l : contains[from] = []).Add(r.GetProperty("relatedSpdxElement").GetString()!);
            }
        }
        foreach (var p in root.GetProperty("packages").EnumerateArray())
        {
            var id = p.GetProperty("SPDXID").GetString()!;
            Assert.Matches("^SPDXRef-[A-Za-z0-9.-]+$", id);
            Assert.True(ids.Add(id), $"duplicate SPDXID {id}");
            Assert.False(string.IsNullOrEmpty(p.GetProperty("name").GetString()));
            Assert.False(string.IsNullOrEmpty(p.GetProperty("downloadLocation").GetString()));
            Assert.Matches("^(NOASSERTION|(Organization|Person): .+)$", p.GetProperty("supplier").GetString()!);
            foreach (var license in new[] { "licenseDeclared", "licenseConcluded" })
            {
                var expr = p.GetProperty(license).GetString()!;
                if (expr is not ("NOASSERTION" or "NONE"))
                {
                    foreach (var token in expr.Replace("(", " ", StringComparison.Ordinal).Replace(")", " ", StringComparison.Ordinal).Split(' ', StringSplitOptions.RemoveEmptyEntries))
                    {
                        Assert.True(token is "AND" or "OR" || licenseRefs.Contains(token), $"{id} {license}: '{token}' is not an operator or a declared LicenseRef");
                    }
                }
            }
            if (p.GetProperty("filesAnalyzed").GetBoolean())
            {
                var code = Convert.ToHexStringLower(SHA1.HashData(Encoding.ASCII.GetBytes(string.Concat(contains[id].Select(f => fileSha1[f]).Order(StringComparer.Ordinal)))));
                Assert.Equal(code, p.GetProperty("packageVerificationCode").GetProperty("packageVerificationCodeValue").GetString());
            }
        }
        foreach (var r in root.GetProperty("relationships").EnumerateArray())
        {
            Assert.Contains(r.GetProperty("spdxElementId").GetString()!, ids);
            Assert.Contains(r.GetProperty("relatedSpdxElement").GetString()!, ids);
        }
        Assert.Contains(root.GetProperty("relationships").EnumerateArray(), r => r.GetProperty("relationshipType").GetString() == "DESCRIBES");
    }
}
