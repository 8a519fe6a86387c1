#!/bin/bash
# Builds the Debian package out/kiln_VERSION_amd64.deb: the kiln binary and kiln-sandbox-exec in /usr/lib/kiln (kiln
# finds kiln-sandbox-exec beside its own real path, so /usr/bin/kiln is a link to it), and a man page made from
# `kiln --help` and each command's --help. Its Depends, Recommends and description come from packaging/control, the
# one list that scripts/setup.sh reads too. Install it with: apt install ./out/kiln_*.deb
# Usage: scripts/build-deb.sh   (builds the tool first when the sources changed: scripts/build-tool.sh)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/setup.sh build
scripts/build-tool.sh

# VERSION: the tool's own, then the commit count and commit, so that a later commit makes a later version (apt installs
# a .deb of the version already installed only with --reinstall).
version=$(out/kiln --version | awk '{ print $2 }')
if count=$(git rev-list --count HEAD 2>/dev/null) && commit=$(git rev-parse --short=10 HEAD 2>/dev/null); then
  version="$version+git$count.$commit"
fi
case $version in
  [0-9]*) ;;
  *) echo "build-deb: cannot tell kiln's version from 'out/kiln --version'" >&2; exit 1 ;;
esac

stage="$(mktemp -d "$root/out/.deb.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"
install -d "$stage/DEBIAN" "$stage/usr/lib/kiln" "$stage/usr/bin" "$stage/usr/share/man/man1"
install -m 0755 out/kiln out/kiln-sandbox-exec "$stage/usr/lib/kiln/"
ln -s ../lib/kiln/kiln "$stage/usr/bin/kiln"

# The man page: the help texts as they are (preformatted), so it never says other than `kiln --help`.
man_text() { # escape for roff: backslashes, and lines that would start with a request
  sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
}
{
  printf '.TH KILN 1 "" "kiln %s" "User Commands"\n.SH NAME\nkiln \\- bake immutable server images fast\n' "$version"
  printf '.SH SYNOPSIS\n.B kiln\n.I COMMAND\n[\\fIOPTIONS\\fR]\n.SH DESCRIPTION\n.nf\n'
  out/kiln --help | man_text
  printf '.fi\n'
  for c in build test export images inspect history verify gc push pull login logout run shell; do
    printf '.SH KILN %s\n.nf\n' "$(tr '[:lower:]' '[:upper:]' <<<"$c")"
    out/kiln "$c" --help | man_text
    printf '.fi\n'
  done
  printf '.SH FILES\n.TP\n.I /var/lib/kiln\nThe store (set \\fBKILN_STORE\\fR to use another folder).\n'
  printf '.TP\n.I /usr/lib/kiln/kiln-sandbox-exec\nThe first process of every sandbox; kiln finds it beside its own real path.\n'
} | gzip -9n >"$stage/usr/share/man/man1/kiln.1.gz"

# DEBIAN/control: the "Package: kiln" paragraph of packaging/control (comments dropped), with the version and size.
size_kb=$(du -sk --exclude=DEBIAN "$stage" | awk '{ print $1 }')
awk -v version="$version" -v size="$size_kb" '
  /^#/ { next }
  /^Package:/ { on = 1 }
  on && /^$/ { exit }
  on { print; if ($0 ~ /^Package:/) { print "Version: " version } }
  END { print "Installed-Size: " size }' packaging/control >"$stage/DEBIAN/control"
grep -q "^Depends: " "$stage/DEBIAN/control" || { echo "build-deb: no Depends in the control file made from packaging/control" >&2; exit 1; }

rm -f out/kiln_*.deb # one package in out/, so that apt install ./out/kiln_*.deb names one file
deb="out/kiln_${version}_amd64.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
