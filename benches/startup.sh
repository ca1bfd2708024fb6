#!/usr/bin/env bash
# Start-up cost of one `trackless filter` process, as Sieve, procmail, maildrop or a Postfix
# pipe start it once per message: wall and CPU time of `trackless filter` on one generated
# 50 KB newsletter that gets rewritten, against `cat` on the same file (medians over N runs,
# the commands alternated so that machine noise hits all of them alike).
#
#   bash benches/startup.sh              # N = 300, the release build
#   TRACKLESS_BENCH_RUNS=1000 bash benches/startup.sh
#   bash benches/startup.sh path/to/trackless   # another build (A/B)
#
# Targets (issue 18): `--no-log` at most 2 ms above cat, the default log at most 3 ms above.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-}
if [[ -z "$bin" ]]; then
  cargo build --release --quiet
  bin=target/release/trackless
fi
cargo build --release --quiet --example newsletter
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target/release/examples/newsletter "$work/msg" 1 50
msg="$work/msg/00000.eml"
mkdir -p "$work/home"
python3 - "$bin" "$msg" "$work/home" "${TRACKLESS_BENCH_RUNS:-300}" <<'PY'
import os, statistics, subprocess, sys, time

binary, msg, home, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
env = dict(os.environ, HOME=home, TRACKLESS_CONFIG="/dev/null")
env.pop("XDG_STATE_HOME", None)
env.pop("XDG_CONFIG_HOME", None)
commands = {
    "cat": ["cat"],
    "filter --no-log": [binary, "--no-log", "filter"],
    "filter (default log)": [binary, "filter"],
}

def once(argv):
    with open(msg, "rb") as f, open(os.devnull, "wb") as out:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=f, stdout=out, stderr=subprocess.PIPE, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        err = p.stderr.read()
        p.stderr.close()
    if status != 0 or err:
        sys.exit(f"{argv}: exit status {status}: {err.decode(errors='replace')}")
    return wall, ru.ru_utime + ru.ru_stime

# The output must be a rewrite, or we would be timing a pass-through.
out = subprocess.run([binary, "--no-log", "filter"], stdin=open(msg, "rb"),
                     capture_output=True, env=env, check=True).stdout
assert out != open(msg, "rb").read(), "the newsletter was not rewritten"

for argv in commands.values():          # warm-up (page cache, the log file created)
    for _ in range(10):
        once(argv)
samples = {name: ([], []) for name in commands}
for _ in range(runs):
    for name, argv in commands.items():
        wall, cpu = once(argv)
        samples[name][0].append(wall)
        samples[name][1].append(cpu)

ms = lambda xs: statistics.median(xs) * 1000
base_wall, base_cpu = ms(samples["cat"][0]), ms(samples["cat"][1])
size = os.path.getsize(msg)
print(f"startup: {runs} runs each, one {size // 1024} KB newsletter (rewritten), medians")
print(f"{'command':<24}{'wall ms':>9}{'above cat':>11}{'cpu ms':>9}{'above cat':>11}")
for name, (wall, cpu) in samples.items():
    w, c = ms(wall), ms(cpu)
    print(f"{name:<24}{w:>9.2f}{w - base_wall:>+11.2f}{c:>9.2f}{c - base_cpu:>+11.2f}")
PY
