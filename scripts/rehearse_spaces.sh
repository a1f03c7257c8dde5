#!/usr/bin/env bash
# Rehearse a Hugging Face Spaces start (sdk: gradio) on this machine, as the platform does it:
#   1. a fresh virtual environment with Gradio at the README's sdk_version and `pip install -r requirements.txt`
#      (nothing of `make setup`, nothing of this checkout's .venv);
#   2. the repository's tracked files copied into an empty folder (a Space is a clone);
#   3. `python app.py` with SPACE_ID set and an empty FACEXPLAIN_HOME, so the app fetches its assets on first
#      start, as a Space must;
#   4. an example pair explained through gradio_client's /explain endpoint.
# Prints each step's time and exits non-zero when any step fails. Needs the package registries (PyPI, npm).
#
#   scripts/rehearse_spaces.sh                 # work in a fresh temporary folder, removed at the end
#   REHEARSAL_DIR=/tmp/space KEEP=1 scripts/rehearse_spaces.sh   # keep the folder (venv, assets) to look at
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3.11}"
PORT="${PORT:-7899}"
WORK="${REHEARSAL_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/facexplain-spaces.XXXXXX")}"
SDK_VERSION="$(sed -n 's/^sdk_version: *//p' "$ROOT/README.md" | head -1)"
[ -n "$SDK_VERSION" ] || { echo "README.md has no sdk_version in its front matter" >&2; exit 1; }
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
step() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "1. fresh venv in $WORK/venv: gradio==$SDK_VERSION, then requirements.txt"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q "gradio==$SDK_VERSION"
"$WORK/venv/bin/pip" install -q -r "$ROOT/requirements.txt"

step "2. the repository's tracked files in $WORK/space"
mkdir -p "$WORK/space"
git -C "$ROOT" ls-files -z | (cd "$ROOT" && xargs -0 tar -cf -) | tar -xf - -C "$WORK/space"

step "3. python app.py with SPACE_ID set and an empty FACEXPLAIN_HOME (assets fetched on first start)"
mkdir -p "$WORK/home"
(cd "$WORK/space" && SPACE_ID=rehearsal/facexplain FACEXPLAIN_HOME="$WORK/home" GRADIO_SERVER_PORT="$PORT" \
   GRADIO_SERVER_NAME=127.0.0.1 exec "$WORK/venv/bin/python" app.py) > "$WORK/app.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 720); do  # assets and their conversion take minutes on a first start
  if curl -fsS "http://127.0.0.1:$PORT/" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then echo "app.py exited:" >&2; tail -30 "$WORK/app.log" >&2; exit 1; fi
  sleep 5
done
curl -fsS "http://127.0.0.1:$PORT/" >/dev/null || { echo "app.py is not serving after an hour" >&2; exit 1; }
echo "serving on http://127.0.0.1:$PORT/"

step "4. an example pair explained through gradio_client"
(cd "$WORK/space" && FACEXPLAIN_HOME="$WORK/home" "$WORK/venv/bin/python" - "$PORT" <<'PY'
import sys
import time

from gradio_client import Client, handle_file

from explainer.app.examples import example_pairs

pair = example_pairs()[0]
client = Client(f"http://127.0.0.1:{sys.argv[1]}/", verbose=False)
started = time.monotonic()
result = client.predict(handle_file(str(pair.probe)), handle_file(str(pair.reference)), api_name="/explain")
decision_md, details, summary_md = result[0], result[1], result[17]
assert decision_md.startswith(("## Match", "## No match")), decision_md[:80]
assert summary_md.startswith("### In short"), summary_md[:80]
print(f"{pair.label}: {'match' if details['decision']['match'] else 'no match'} "
      f"(score {details['decision']['similarity']:.3f}) in {time.monotonic() - started:.1f} s")
print(summary_md)
PY
)
step "done: a Space built from requirements.txt serves and explains"
