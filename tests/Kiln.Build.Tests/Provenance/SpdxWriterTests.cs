using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Kiln.Build.Provenance;
using Kiln.Build.Tests.Layers;
using Kiln.Oci;

namespace Kiln.Build.Tests.Provenance;

public sealed class SpdxWriterTests : IDisposable
{
    private readonly TempRoot _root = new();

    public void Dispose() => _root.Dispose();

    private static readonly Digest Manifest = Digest.Parse("sha256:" + new string('a', 64));
    private static readonly DateTimeOffset Created = DateTimeOffset.FromUnixTimeSeconds(1700000000);

    private const string Status = """
        Package: nginx-light
        Status: install ok installed
        Architecture: amd64
        Source: nginx (1.22.1-9)
        Version: 1.22.1-9+b1
        Maintainer: Debian Nginx Maintainers <pkg-nginx@example.org>
        Description: small web server
         more text
         .
         and more

        Package: libfoo1
        Status: install ok installed
        Architecture: amd64
        Multi-Arch: same
        Version: 2.0-1
        Maintainer: Foo Person <foo@example.org>

        Package: removed
        Status: deinstall ok config-files
        Version: 1.0

        """;

    private const string Copyright = """
        Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
        Upstream-Name: nginx

        Files: src/*
        Copyright: someone
        License: GPL-2+ or Artistic

        Files: *
        Copyright: 2002 Igor
        License: BSD-2-clause
         Redistribution and use ...

        """;

    private string Layer()
    {
        var dir = _root.Dir("layer");
        Write(dir, "var/lib/dpkg/status", Status);
        Write(dir, "var/lib/dpkg/info/nginx-light.list", "/.\n/usr\n/usr/sbin\n/usr/sbin/nginx\n/usr/share/doc/nginx-light/copyright\n/etc/gone\n");
        Write(dir, "var/lib/dpkg/info/nginx-light.md5sums", "0123456789abcdef0123456789abcdef  usr/sbin/nginx\n");
        Write(dir, "var/lib/dpkg/info/libfoo1:amd64.list", "/usr/lib/libfoo.so.1\n");
        Write(dir, "usr/sbin/nginx", "binary");
        Write(dir, "usr/share/doc/nginx-light/copyright", Copyright);
        Write(dir, "usr/share/doc/libfoo1/copyright", "Not machine-readable.\n");
        Write(dir, "usr/lib/libfoo.so.1", "lib");
        return dir;
    }

    private static void Write(string root, string relative, string text)
    {
        var path = Path.Combine(root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text.Replace("\r\n", "\n", StringComparison.Ordinal));
    }

    [Fact]
    public void Lists_each_installed_package_with_version_source_supplier_license_and_file_checksums()
    {
        var bytes = SpdxWriter.Write([Layer()], "web", Manifest, Created, "kiln-1.0")!;
        using var doc = JsonDocument.Parse(bytes);
        var root = doc.RootElement;

        Assert.Equal("SPDX-2.3", root.GetProperty("spdxVersion").GetString());
        Assert.Equal("CC0-1.0", root.GetProperty("dataLicense").GetString());
        Assert.Equal("2023-11-14T22:13:20Z", root.GetProperty("creationInfo").GetProperty("created").GetString());
        var packages = root.GetProperty("packages").EnumerateArray().ToList();
        Assert.Equal(["libfoo1", "nginx-light"], packages.Select(p => p.GetProperty("name").GetString()));

        var nginx = packages[1];
        Assert.Equal("1.22.1-9+b1", nginx.GetProperty("versionInfo").GetString());
        Assert.Equal("built package from: nginx 1.22.1-9", nginx.GetProperty("sourceInfo").GetString());
        Assert.Equal("Organization: Debian Nginx Maintainers (pkg-nginx@example.org)", nginx.GetProperty("supplier").GetString());
        Assert.Equal("LicenseRef-BSD-2-clause AND (LicenseRef-GPL-2-or-later OR LicenseRef-Artistic)", nginx.GetProperty("licenseDeclared").GetString());
        Assert.Equal("pkg:deb/debian/nginx-light@1.22.1-9%2Bb1?arch=amd64", nginx.GetProperty("externalRefs")[0].GetProperty("referenceLocator").GetString());
        Assert.Equal("NOASSERTION", packages[0].GetProperty("licenseDeclared").GetString());

        var files = root.GetProperty("files").EnumerateArray().ToDictionary(f => f.GetProperty("fileName").GetString()!);
        Assert.Equal(["./usr/lib/libfoo.so.1", "./usr/sbin/nginx", "./usr/share/doc/nginx-light/copyright"], files.Keys.Order(StringComparer.Ordinal));
        var sums = files["./usr/sbin/nginx"].GetProperty("checksums").EnumerateArray()
            .ToDictionary(c => c.GetProperty("algorithm").GetString()!, c => c.GetProperty("checksumValue").GetString());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData("binary"u8)), sums["SHA256"]);
        Assert.Equal(Convert.ToHexStringLower(SHA1.HashData("binary"u8)), sums["SHA1"]);
        Assert.Equal("0123456789abcdef0123456789abcdef", sums["MD5"]);

        var refs = root.GetProperty("hasExtractedLicensingInfos").EnumerateArray().Select(l => l.GetProperty("licenseId").GetString()).ToList();
        Assert.Equal(["LicenseRef-Artistic", "LicenseRef-BSD-2-clause", "LicenseRef-GPL-2-or-later"], refs);
        SpdxStructure.AssertValid(root);
    }

    [Fact]
    public void Same_image_and_time_give_the_same_bytes()
    {
        var layer = Layer();
        var a = SpdxWriter.Write([layer], "web", Manifest, Created, "kiln-1.0")!;
        var b = SpdxWriter.Write([layer], "web", Manifest, Created, "kiln-1.0")!;
        Assert.Equal(a, b);
        Assert.NotEqual(a, SpdxWriter.Write([layer], "web", Manifest, Created.AddSeconds(1), "kiln-1.0"));
    }

    [Fact]
    public void An_image_without_dpkg_has_no_sbom() =>
        Assert.Null(SpdxWriter.Write([_root.Dir("empty")], "tiny", Manifest, Created, "kiln-1.0"));
}
