# Sourced by scripts/refresh.sh and scripts/build-tool.sh (bash): checks, with bash builtins only (no process started), whether
# the set-up and the tool are current. Each takes the repository's root.

# 0 when scripts/setup.sh MODE has installed the list that packaging/control holds now (see its stamp out/.setup-MODE).
setup_is_current() { # ROOT MODE
  local want have
  [ -f "$1/out/.setup-$2" ] || return 1
  IFS= read -r -d '' want <"$1/packaging/control" || true
  IFS= read -r -d '' have <"$1/out/.setup-$2" || true
  [ -n "$want" ] && [ "$want" = "$have" ]
}

# The sources of out/kiln, one a line ("d PATH" or "f PATH", relative to ROOT): every file and dir under src/ but the
# bin and obj dirs (where dotnet builds), and Directory.Build.props. scripts/build-tool.sh records them in out/.sources.
kiln_sources() { # ROOT
  (cd "$1" && find src \( -name bin -o -name obj \) -prune -o \( -type d -printf 'd %p\n' \) -o -printf 'f %p\n' | LC_ALL=C sort &&
    echo "f Directory.Build.props")
}

# 0 when out/kiln is current (kiln's Checkout.ToolIsCurrent applies the same rules for ./kiln) (scripts/build-tool.sh writes the three files it reads): out/.sources-time newer than
# every source file listed and out/.sources-dirs newer than every source dir listed. A file added, removed or renamed
# shows as its dir's change. Strictly newer: file times come from a clock that ticks every few milliseconds, and a
# change within the tick of a stamp must not pass for older (test -nt compares nanoseconds).
tool_is_current() { # ROOT
  local line
  local -a lines
  [[ -x $1/out/kiln && -x $1/out/kiln-sandbox-exec && -f $1/out/.sources && -f $1/out/.sources-time && -f $1/out/.sources-dirs &&
    -d $1/src && -f $1/Directory.Build.props ]] || return 1
  mapfile -t lines <"$1/out/.sources" 2>/dev/null || return 1
  [[ ${#lines[@]} -gt 0 ]] || return 1
  for line in "${lines[@]}"; do
    case $line in
      "d "*) [[ $1/out/.sources-dirs -nt $1/${line:2} ]] || return 1 ;;
      "f "*) [[ $1/out/.sources-time -nt $1/${line:2} ]] || return 1 ;;
      *) return 1 ;;
    esac
  done
  return 0
}
