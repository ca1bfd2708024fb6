#!/usr/bin/env bash
# Peak memory (VmHWM, from GNU time's maximum resident set size) of one `trackless filter`
# on a message just under the default 64 MiB size limit, in the two shapes that cost most:
#   html   one 64 MiB quoted-printable HTML part with links (rewritten whole);
#   attach a 50 KB tracked newsletter with a 46 MiB attachment (62 MiB in base64): the
#          newsletter is rewritten, the attachment's bytes are copied through untouched.
# Target (issue 19): at most twice the message plus 32 MiB.
#
#   bash benches/memory.sh [path/to/trackless]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-}
if [[ -z "$bin" ]]; then
  cargo build --release --quiet
  bin=target/release/trackless
fi
[[ -x /usr/bin/time ]] || { echo "needs GNU time (apt-get install time)" >&2; exit 1; }
cargo build --release --quiet --example newsletter
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target/release/examples/newsletter "$work/html" 1 65000
mv "$work/html/00000.eml" "$work/html.eml"
target/release/examples/newsletter "$work/small" 1 50
python3 - "$work/small/00000.eml" "$work/attach.eml" <<'PY'
import base64, random, sys
msg = open(sys.argv[1], "rb").read()
nl = b"\r\n" if b"\r\n" in msg[:200] else b"\n"
head, body = msg.split(nl + nl, 1)
lines = head.split(nl)
# The newsletter's own Content-Type (one line in the generated messages) becomes the first part's.
ct = next(i for i, l in enumerate(lines) if l.lower().startswith(b"content-type:"))
inner = lines.pop(ct)
rng = random.Random(7)
data = bytes(rng.getrandbits(8) for _ in range(1 << 20)) * 46
out = nl.join(lines) + nl + b'Content-Type: multipart/mixed; boundary="=mixed"' + nl + nl
out += b"--=mixed" + nl + inner + nl + nl + body + nl
out += b"--=mixed" + nl + b"Content-Type: application/octet-stream" + nl
out += b"Content-Transfer-Encoding: base64" + nl
out += b'Content-Disposition: attachment; filename="data.bin"' + nl + nl
out += base64.encodebytes(data).replace(b"\n", nl) + b"--=mixed--" + nl
open(sys.argv[2], "wb").write(out)
PY
printf '%-8s %10s %12s %12s %8s\n' message "size MiB" "peak MiB" "target MiB" rewritten
for m in html attach; do
  f="$work/$m.eml"
  size=$(stat -c %s "$f")
  kb=$(/usr/bin/time -o "$work/time" -f '%M' env TRACKLESS_CONFIG=/dev/null HOME="$work" \
    "$bin" --no-log filter <"$f" >"$work/out" 2>/dev/null && cat "$work/time")
  changed=no
  cmp -s "$f" "$work/out" || changed=yes
  awk -v n="$m" -v s="$size" -v k="$kb" -v c="$changed" 'BEGIN {
    printf "%-8s %10.1f %12.1f %12.1f %8s\n", n, s / 1048576, k / 1024, 2 * s / 1048576 + 32, c }'
done
