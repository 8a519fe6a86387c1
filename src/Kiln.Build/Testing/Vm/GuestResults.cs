using System.Globalization;
using System.Text;

namespace Kiln.Build.Testing.Vm;

/// <summary>A probe's outcome as the guest reported it.</summary>
internal sealed record GuestResult(int Id, int ExitCode, bool TimedOut, string Stdout, string Stderr);

/// <summary>Reads the lines the guest script writes on the results port. A line may carry noise before its
/// marker (the port is a terminal) and a trailing carriage return; anything that is not a well-formed marker
/// line is ignored.</summary>
internal static class GuestResults
{
    /// <summary>The system state (running, degraded…) of a ready line, or null.</summary>
    public static string? Ready(string line) =>
        Fields(line, GuestScript.ReadyMarker) is [var state] ? state : null;

    /// <summary>The probe count of a done line, or null.</summary>
    public static int? Done(string line) =>
        Fields(line, GuestScript.DoneMarker) is [var n] && int.TryParse(n, NumberStyles.None, CultureInfo.InvariantCulture, out var count)
            ? count
            : null;

    public static GuestResult? Result(string line)
    {
        if (Fields(line, GuestScript.ResultMarker) is not [var id, var rc, var to, var stdout, var stderr]
            || !int.TryParse(id, NumberStyles.None, CultureInfo.InvariantCulture, out var probe)
            || !int.TryParse(rc, NumberStyles.None, CultureInfo.InvariantCulture, out var exit)
            || to is not ("0" or "1")
            || Decode(stdout) is not { } o
            || Decode(stderr) is not { } e)
        {
            return null;
        }
        return new GuestResult(probe, exit, to == "1", o, e);
    }

    private static string[]? Fields(string line, string marker)
    {
        var at = line.IndexOf(marker + " ", StringComparison.Ordinal);
        if (at < 0)
        {
            return null;
        }
        return line[(at + marker.Length + 1)..].TrimEnd('\r', '\n').Split(' ', StringSplitOptions.RemoveEmptyEntries);
    }

    /// <summary>"-" is empty output.</summary>
    private static string? Decode(string field)
    {
        if (field == "-")
        {
            return "";
        }
        try
        {
            return Encoding.UTF8.GetString(Convert.FromBase64String(field));
        }
        catch (FormatException)
        {
            return null;
        }
    }
}
