#!/bin/bash
# ./kiln's slow path, also taken when out/kiln finds the set-up or itself not current: installs what Kiln needs
# (scripts/setup.sh build) and builds the tool (scripts/build-tool.sh) when needed, then runs out/kiln with the
# arguments given.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/current.sh
. "$here/scripts/current.sh"
setup_is_current "$here" build || "$here/scripts/setup.sh" build
tool_is_current "$here" || "$here/scripts/build-tool.sh"
unset KILN_CHECKOUT
exec "$here/out/kiln" "$@"
