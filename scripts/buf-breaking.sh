#!/usr/bin/env bash
# `buf breaking`: the contract in the work tree against the one main last had.
#  - On a branch: against the merge-base with main, where the branch started.
#  - On main itself (HEAD is main, as in CI's clone): against HEAD when
#    protos/ has uncommitted changes, else against the revision before the
#    last commit on main's first-parent line that changed protos/.
# A deliberate break is accepted by a `Breaking-Change: <why>` trailer in the
# message of a commit that changes protos/: the comparison then starts from the
# newest such commit in that range. Without a git history to compare with
# (no checkout, a shallow clone that cannot be deepened, no main) the check is
# skipped with a warning, and fails in CI.
set -euo pipefail
cd "$(dirname "$0")/.."

skip() {
  if [ "${CI:-}" = "true" ]; then
    echo "buf breaking: $1; CI requires the check" >&2
    exit 1
  fi
  echo "WARNING: buf breaking skipped: $1" >&2
  exit 0
}

git rev-parse --git-dir >/dev/null 2>&1 || skip "not a git checkout"
if [ "$(git rev-parse --is-shallow-repository)" = true ]; then
  git fetch --quiet --unshallow || skip "a shallow clone whose history could not be fetched"
fi
main=$(git rev-parse --verify --quiet main || git rev-parse --verify --quiet origin/main) ||
  skip "no main or origin/main branch to compare with"

base=$(git merge-base HEAD "$main")
if [ "$base" = "$(git rev-parse HEAD)" ] && [ -z "$(git status --porcelain -- protos)" ]; then
  last=$(git log -1 --first-parent --format=%H HEAD -- protos)
  if ! base=$(git rev-parse --verify --quiet "$last^1"); then
    echo "buf breaking: protos/ has no earlier revision to compare with"
    exit 0
  fi
fi
accepted=$(git log --format='%H %(trailers:key=Breaking-Change,valueonly,unfold,separator=%x20)' \
  "$base..HEAD" -- protos | awk 'NF > 1 && !found { print $1; found = 1 }')
if [ -n "$accepted" ]; then
  echo "buf breaking: $(git log -1 --format='%h %s' "$accepted") accepts its breaks; comparing from there"
  base=$accepted
fi

# The old protos/ under today's buf.yaml. Revisions from before
# protos/third_party found google/rpc in a wheel: they get today's copy of it.
against=build/breaking-against
rm -rf "$against"
mkdir -p "$against"
git archive "$base" protos | tar -x -C "$against"
cp buf.yaml "$against/"
[ -d "$against/protos/third_party/googleapis" ] || cp -r protos/third_party "$against/protos/"
echo "buf breaking against $(git log -1 --format='%h (%s)' "$base")"
exec scripts/buf.sh breaking --against "$against"
