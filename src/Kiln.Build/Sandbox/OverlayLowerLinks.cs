using System.Globalization;

namespace Kiln.Build.Sandbox;

/// <summary>overlayfs takes its options in one page (4 KiB): about 40 layers at their full store paths. Mounting from
/// a dir of short symlinks (0, 1, 2, ...) to the lower dirs, with those relative names as the lowerdir option,
/// fits hundreds. The mounting process must run in that dir.</summary>
internal static class OverlayLowerLinks
{
    /// <summary>Overlay features fixed off whatever the kernel's defaults: with redirect_dir a renamed lower dir
    /// becomes an empty upper dir pointing at the old name (measured: a step's `mv` of a lower dir lost its files
    /// from the layer), with metacopy a chown or chmod copies up no data, and index ties lower dirs to one upper.
    /// A layer must hold whole files and dirs.</summary>
    public const string FixedFeatures = "redirect_dir=off,metacopy=off,index=off";

    /// <summary>Makes <paramref name="dir"/> afresh with one symlink per lower dir (topmost first) and returns the
    /// lowerdir option to use from inside it.</summary>
    public static string Create(string dir, IReadOnlyList<string> lowersTopFirst)
    {
        if (Directory.Exists(dir))
        {
            Directory.Delete(dir, recursive: true);
        }
        Directory.CreateDirectory(dir);
        var names = new List<string>(lowersTopFirst.Count);
        for (int i = 0; i < lowersTopFirst.Count; i++)
        {
            var name = i.ToString(CultureInfo.InvariantCulture);
            File.CreateSymbolicLink(Path.Combine(dir, name), Path.GetFullPath(lowersTopFirst[i]));
            names.Add(name);
        }
        return string.Join(':', names);
    }
}
