#!/bin/bash
# Builds the kiln binary (NativeAOT) and kiln-sandbox-exec into out/ when any source changed since the last build.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=out/kiln
# Sources only: the Debug build of ./test writes under src/*/bin and src/*/obj.
if [ -x "$bin" ] && [ -z "$(find src Directory.Build.props \( -name bin -o -name obj \) -prune -o -newer "$bin" -type f -print 2>/dev/null | head -1)" ]; then
  exit 0
fi
echo "kiln: building the tool (NativeAOT) ..." >&2
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet publish src/Kiln.Cli -c Release -r linux-x64 -p:PublishAot=true -o out/publish -v quiet -nologo >&2
# kiln-sandbox-exec first: kiln looks for it beside itself, and out/kiln's time says whether the build is current.
install -m 0755 out/publish/kiln-sandbox-exec out/kiln-sandbox-exec.tmp
mv -f out/kiln-sandbox-exec.tmp out/kiln-sandbox-exec
install -m 0755 out/publish/kiln "$bin.tmp"
mv -f "$bin.tmp" "$bin"
