using Kiln.Build.Definition;
namespace Kiln.Build.Exporters;

/// <summary>The forms an image can be written in.</summary>
public enum ExportFormat
{
    OciArchive,
    DockerArchive,
    Rootfs,
    Raw,
    Qcow2,
    Vagrant,
}

public static class ExportFormats
{
    /// <summary>Every format by the name users type, in the order help lists them.</summary>
    public static IReadOnlyList<(string Name, ExportFormat Format, string Extension)> All { get; } =
    [
        ("oci-archive", ExportFormat.OciArchive, DefinitionSyntax.OutputExtension("oci-archive")),
        ("docker-archive", ExportFormat.DockerArchive, DefinitionSyntax.OutputExtension("docker-archive")),
        ("rootfs", ExportFormat.Rootfs, DefinitionSyntax.OutputExtension("rootfs")),
        ("raw", ExportFormat.Raw, DefinitionSyntax.OutputExtension("raw")),
        ("qcow2", ExportFormat.Qcow2, DefinitionSyntax.OutputExtension("qcow2")),
        ("vagrant", ExportFormat.Vagrant, DefinitionSyntax.OutputExtension("vagrant")),
    ];

    public static string Names => string.Join(", ", All.Select(f => f.Name));

    public static bool TryParse(string? name, out ExportFormat format)
    {
        foreach (var f in All)
        {
            if (f.Name == name)
            {
                format = f.Format;
                return true;
            }
        }
        format = default;
        return false;
    }

    public static string Name(ExportFormat format) => All.First(f => f.Format == format).Name;

    /// <summary>The default file name of an image's export: <c>NAME.EXT</c>, e.g. <c>server.qcow2</c>.</summary>
    public static string DefaultFileName(string image, ExportFormat format) => image + All.First(f => f.Format == format).Extension;

    /// <summary>Disk formats need a kernel in the image and are built through an ext4 root filesystem.</summary>
    public static bool IsDisk(ExportFormat format) => format is ExportFormat.Raw or ExportFormat.Qcow2 or ExportFormat.Vagrant;
}
