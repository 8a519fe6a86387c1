using System.Globalization;
using System.Text;

namespace Kiln.Build.Testing.Vm;

/// <summary>One thing the guest runs and reports: <c>/bin/sh -c COMMAND</c> as root, bounded by a timeout.</summary>
internal sealed record GuestProbe(int Id, string Command, TimeSpan Timeout);

/// <summary>What the VM check writes into the guest's root: a oneshot systemd unit that starts after
/// multi-user.target, and the shell script it runs. The script waits until systemd has finished starting
/// (running or degraded), writes the ready marker, runs each probe and writes its result as one line on the
/// results port (ttyS1; outputs in base64), writes the done marker, then waits for the host's power-off
/// request on that port (the minimal images we boot have no logind to act on an ACPI power button).</summary>
internal static class GuestScript
{
    public const string Directory = "/etc/kiln-vm-check";
    public const string ScriptName = "run.sh";
    public const string ScriptPath = Directory + "/" + ScriptName;
    public const string UnitName = "kiln-vm-check.service";
    public const string UnitDirectory = "/etc/systemd/system";
    public const string WantsDirectory = UnitDirectory + "/multi-user.target.wants";

    public const string ReadyMarker = "KILN-VM-READY";
    public const string ResultMarker = "KILN-VM-RESULT";
    public const string DoneMarker = "KILN-VM-DONE";
    public const string PowerOffRequest = "KILN-VM-POWEROFF";

    /// <summary>Bytes of each probe's stdout and stderr that are reported.</summary>
    public const int MaxOutput = 64 * 1024;

    public static string Unit() =>
        $"""
        [Unit]
        Description=Kiln VM check (written by kiln test --phase vm into a throwaway disk)
        After=multi-user.target

        [Service]
        Type=simple
        Environment=HOME=/root
        ExecStart=/bin/sh {ScriptPath} /dev/ttyS1 /dev/ttyS0 boot
        StandardOutput=journal+console
        StandardError=journal+console

        [Install]
        WantedBy=multi-user.target

        """;

    /// <summary>The script. Its arguments: the results port, the console, and <c>boot</c> (wait for systemd, then for
    /// the power-off request) or anything else (just run the probes: for tests on the host).</summary>
    public static string Script(IReadOnlyList<GuestProbe> probes)
    {
        var sb = new StringBuilder();
        // An in-image script: the guest runs it, with the guest's programs.
        sb.Append($$"""
            #!/bin/sh
            # Written by kiln's VM check into a throwaway copy of the disk: runs the checks once the system is up
            # and reports each on the results port as one line (outputs in base64).
            out=$1 con=$2 mode=$3
            exec 3<>"$out" || exit 1
            d=$(mktemp -d) || exit 1
            if [ "$mode" = boot ]; then
              stty -F "$out" -echo 2>/dev/null
              state=$(timeout 900 systemctl is-system-running --wait 2>/dev/null)
            else
              state=test
            fi
            echo "{{ReadyMarker}} ${state:-unknown}" >&3
            echo "{{ReadyMarker}} ${state:-unknown}" >>"$con"
            b64() { v=$(head -c {{MaxOutput}} "$1" | base64 -w0); echo "${v:--}"; }
            probe() {
              rm -f "$d/o" "$d/e" "$d/t"
              timeout -v -k 5 "$2" /bin/sh -c 'exec </dev/null >"$1" 2>"$2"; exec /bin/sh -c "$3"' sh "$d/o" "$d/e" "$3" 2>"$d/t" 3>&-
              rc=$?
              to=0
              case $rc in 124|137) [ -s "$d/t" ] && to=1 ;; esac
              echo "{{ResultMarker}} $1 $rc $to $(b64 "$d/o") $(b64 "$d/e")" >&3
            }

            """);
        foreach (var p in probes)
        {
            sb.Append(CultureInfo.InvariantCulture, $"probe {p.Id} {Seconds(p.Timeout)} {Quote(p.Command)}\n");
        }
        // The rest of the in-image script.
        sb.Append($$"""
            rm -rf "$d"
            echo "{{DoneMarker}} {{probes.Count}}" >&3
            echo "{{DoneMarker}} {{probes.Count}}" >>"$con"
            if [ "$mode" = boot ]; then
              while IFS= read -r line <&3; do
                case $line in *{{PowerOffRequest}}*) exec systemctl poweroff ;; esac
              done
            fi

            """);
        return sb.ToString();
    }

    /// <summary>A POSIX shell word that stands for exactly <paramref name="s"/>: single quotes, each embedded
    /// quote closed, escaped and reopened.</summary>
    public static string Quote(string s)
    {
        if (s.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException("a command for the VM check contains a NUL character", nameof(s));
        }
        return "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
    }

    /// <summary>Seconds for timeout(1): whole or with up to three decimals, at least one millisecond.</summary>
    public static string Seconds(TimeSpan t) =>
        Math.Max(t.TotalSeconds, 0.001).ToString("0.###", CultureInfo.InvariantCulture);
}
