namespace Kiln.Build.Sandbox;

/// <summary>The shell that runs as PID 1's parent inside the new namespaces: it builds the root and then
/// execs the command. Every mount it makes lives in the private mount namespace, so the kernel removes
/// them all when the namespace's last process exits — also after a crash or SIGKILL.</summary>
internal static class SandboxScript
{
    public const string Text = """
set -eu
fail() { echo "kiln-sandbox: $*" >&2; exit 125; }
m="$KILN_MERGED"
mount -t overlay kiln-root -o "lowerdir=$KILN_LOWER,upperdir=$KILN_UPPER,workdir=$KILN_WORK" "$m" || fail "overlay mount failed"
if [ "${KILN_SYSTEM_MOUNTS:-yes}" = yes ] && [ -d "$m/proc" ] && [ ! -L "$m/proc" ]; then
  mount -t proc -o nosuid,nodev,noexec kiln-proc "$m/proc" || fail "mounting /proc failed"
fi
if [ "${KILN_SYSTEM_MOUNTS:-yes}" = yes ] && [ -d "$m/sys" ] && [ ! -L "$m/sys" ]; then
  mount -t sysfs -o ro,nosuid,nodev,noexec kiln-sys "$m/sys" 2>/dev/null || mount --rbind -o ro /sys "$m/sys" || fail "mounting /sys failed"
fi
if [ "${KILN_SYSTEM_MOUNTS:-yes}" = yes ] && [ -d "$m/dev" ] && [ ! -L "$m/dev" ]; then
  mount -t tmpfs -o nosuid,noexec,mode=0755,size=65536k kiln-dev "$m/dev" || fail "mounting /dev failed"
  for d in null zero full random urandom tty; do
    : > "$m/dev/$d"
    mount --bind "/dev/$d" "$m/dev/$d" || fail "binding /dev/$d failed"
  done
  mkdir "$m/dev/pts" "$m/dev/shm" "$m/dev/mqueue"
  mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 kiln-devpts "$m/dev/pts" || fail "mounting /dev/pts failed"
  ln -s pts/ptmx "$m/dev/ptmx"
  mount -t tmpfs -o nosuid,nodev,mode=1777 kiln-shm "$m/dev/shm" || fail "mounting /dev/shm failed"
  ln -s /proc/self/fd "$m/dev/fd"
  ln -s /proc/self/fd/0 "$m/dev/stdin"
  ln -s /proc/self/fd/1 "$m/dev/stdout"
  ln -s /proc/self/fd/2 "$m/dev/stderr"
fi
if [ -n "${KILN_BINDS:-}" ]; then
  printf '%s\n' "$KILN_BINDS" | while IFS='|' read -r src dst ro; do
    [ -n "$src" ] || continue
    mount --bind "$src" "$m$dst" || fail "binding $src to $dst failed"
    if [ "$ro" = ro ]; then mount -o remount,bind,ro "$m$dst" || fail "making $dst read-only failed"; fi
  done
fi
if [ "${KILN_NET:-host}" = none ]; then
  ip link set lo up 2>/dev/null || true
fi
hostname "$KILN_HOSTNAME" 2>/dev/null || true
unset KILN_SYSTEM_MOUNTS KILN_MERGED KILN_LOWER KILN_UPPER KILN_WORK KILN_BINDS KILN_NET KILN_HOSTNAME
exec env -i "$@"
""";
}
