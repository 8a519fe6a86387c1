#!/bin/bash
# Builds the kiln binary (NativeAOT) and kiln-sandbox-exec into out/ when any source changed since the last build.
# Sources: every file under src/ (but the bin and obj dirs, where the Debug build of ./test writes) and
# Directory.Build.props. Besides the binaries it leaves what lets ./kiln tell without starting a process that they
# are current (scripts/current.sh):
#   out/.sources       every source file and dir, one a line ("f PATH" or "d PATH")
#   out/.sources-time  made just before the build read the sources: a file newer than it changed since
#   out/.sources-dirs  made just after the build: a dir newer than it has had an entry added, removed or renamed since
#                      (the build itself may make bin or obj dirs under src/, which is why dirs get a later time)
#   out/.checks-itself out/kiln makes these checks itself when ./kiln runs it (see ./kiln)
# They are written only when the list of sources after the build is the one before it; without them the next call
# builds again.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/current.sh
. scripts/current.sh
if tool_is_current "$root"; then
  exit 0
fi

mkdir -p out
# One build at a time: ./test's first kiln call and the examples/web fixture's ./kiln start at once, and two
# NativeAOT publishes into out/publish cost twice the CPU and race on its files. The second waits, then finds the
# tool current.
exec 9>out/.build-lock
flock 9
if tool_is_current "$root"; then
  exit 0
fi
rm -f out/.sources out/.sources-time out/.sources-dirs
touch out/.sources-time.new
before=$(kiln_sources "$root")
echo "kiln: building the tool (NativeAOT) ..." >&2
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet publish src/Kiln.Cli -c Release -r linux-x64 -p:PublishAot=true -o out/publish -v quiet -nologo >&2
install -m 0755 out/publish/kiln-sandbox-exec out/kiln-sandbox-exec.tmp
mv -f out/kiln-sandbox-exec.tmp out/kiln-sandbox-exec
install -m 0755 out/publish/kiln out/kiln.tmp
mv -f out/kiln.tmp out/kiln
touch out/.checks-itself
touch out/.sources-dirs.new
if [ "$(kiln_sources "$root")" = "$before" ]; then
  printf '%s\n' "$before" >out/.sources.new
  mv -f out/.sources-dirs.new out/.sources-dirs
  mv -f out/.sources-time.new out/.sources-time
  mv -f out/.sources.new out/.sources
else
  echo "kiln: sources were added or removed during the build; the next call builds again" >&2
fi
