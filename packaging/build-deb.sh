#!/usr/bin/env bash
# packaging/build-deb.sh — builds the Debian package of trackless from a checkout:
#
#     bash packaging/build-deb.sh            # prints the path of the .deb on stdout
#     sudo dpkg -i "$(bash packaging/build-deb.sh)"
#
# 1. installs cargo-deb when it is missing (or another version);
# 2. builds the release binary, once (cargo build --release --locked);
# 3. generates the man pages (trackless.1, trackless-COMMAND.1 from the CLI definition, and
#    packaging/man/trackless.toml.5), gzipped, and the bash/zsh/fish completions into
#    target/deb-assets/ (generated files: never committed);
# 4. runs cargo deb --no-build, which packs them as [package.metadata.deb] in Cargo.toml says,
#    with the maintainer scripts of packaging/debian/.
#
# Progress goes to stderr; the only line on stdout is the .deb's path. Any failure exits
# non-zero. Needs: cargo, gzip, dpkg (dpkg-shlibdeps, from dpkg-dev, for the $auto
# dependencies; without it cargo-deb warns and depends on libc6 only).
set -euo pipefail
cd "$(dirname "$0")/.."

# cargo-deb 3.8.0: declares rust-version 1.85 and builds with Rust 1.95 (about 70 s on two
# cores); pinned, and installed --locked, so that every build packs the same way.
CARGO_DEB_VERSION=3.8.0

say() { printf 'build-deb: %s\n' "$*" >&2; }
die() {
  printf 'build-deb: ERROR: %s\n' "$*" >&2
  exit 1
}

command -v cargo >/dev/null || die "cargo not found"
command -v gzip >/dev/null || die "gzip not found"

# --- 1. cargo-deb ---------------------------------------------------------------------------
installed=$(cargo deb --version 2>/dev/null || true)
if [[ "$installed" != "cargo-deb $CARGO_DEB_VERSION" ]]; then
  say "installing cargo-deb $CARGO_DEB_VERSION${installed:+ (found: $installed)}"
  # Its own target directory: never the project's (or a CARGO_TARGET_DIR shared with it).
  install_dir=$(mktemp -d "${TMPDIR:-/tmp}/cargo-deb-install.XXXXXX")
  trap 'rm -rf "$install_dir"' EXIT
  t0=$SECONDS
  cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION" \
    --target-dir "$install_dir" >&2 || die "cargo install cargo-deb $CARGO_DEB_VERSION failed"
  rm -rf "$install_dir"
  say "cargo-deb installed in $((SECONDS - t0))s"
  [[ "$(cargo deb --version 2>/dev/null)" == "cargo-deb $CARGO_DEB_VERSION" ]] ||
    die "cargo deb is not version $CARGO_DEB_VERSION after installing it (is ~/.cargo/bin on PATH?)"
fi

# --- 2. the release binary ------------------------------------------------------------------
# Where cargo puts it (CARGO_TARGET_DIR and .cargo/config.toml are honoured); cargo-deb finds
# it there too.
metadata=$(cargo metadata --format-version 1 --no-deps --locked) || die "cargo metadata failed"
target_dir=$(sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p' <<<"$metadata")
[[ -n "$target_dir" ]] || die "cannot find cargo's target directory"
# The Debian changelog's newest entry should be this version (revision 1).
version=$(grep -o '"name":"trackless","version":"[^"]*"' <<<"$metadata" | sed 's/.*"version":"\([^"]*\)"/\1/')
if command -v dpkg-parsechangelog >/dev/null; then
  logged=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
  [[ "$logged" == "$version-1" ]] ||
    say "warning: packaging/debian/changelog is at $logged, Cargo.toml at $version: add an entry"
fi
say "cargo build --release --locked"
t0=$SECONDS
cargo build --release --locked >&2 || die "release build failed"
say "release build: $((SECONDS - t0))s"
bin="$target_dir/release/trackless"
[[ -x "$bin" ]] || die "$bin was not built"
"$bin" --version >&2 || die "$bin does not run"

# --- 3. generated assets --------------------------------------------------------------------
# Relative to the crate, as the asset paths in Cargo.toml (cargo-deb reads them from there
# whatever the target directory is).
assets=target/deb-assets
rm -rf "$assets"
mkdir -p "$assets/man/man1" "$assets/man/man5" "$assets/completions"
"$bin" man "$assets/man/man1" || die "trackless man failed"
ls "$assets/man/man1"/trackless.1 >/dev/null || die "trackless man wrote no trackless.1"
# The hand-written page of the configuration file must render without a warning.
if command -v man >/dev/null; then
  warnings=$(man --warnings -l packaging/man/trackless.toml.5 2>&1 >/dev/null) ||
    die "packaging/man/trackless.toml.5 does not render"
  [[ -z "$warnings" ]] || die "packaging/man/trackless.toml.5 renders with warnings: $warnings"
else
  say "man not installed: trackless.toml.5 not checked for warnings"
fi
cp packaging/man/trackless.toml.5 "$assets/man/man5/"
# -n: no name or time stamp in the gzip header, so the same page gives the same bytes.
gzip -9n "$assets/man/man1"/*.1 "$assets/man/man5"/*.5
"$bin" completions bash >"$assets/completions/trackless.bash"
"$bin" completions zsh >"$assets/completions/_trackless"
"$bin" completions fish >"$assets/completions/trackless.fish"
for f in "$assets/completions"/*; do
  [[ -s "$f" ]] || die "$f is empty"
done
say "man pages and completions in $assets: $(cd "$assets" && find . -type f | sort | tr '\n' ' ')"

# --- 4. the package -------------------------------------------------------------------------
say "cargo deb --no-build"
out=$(cargo deb --no-build --locked) || die "cargo deb failed"
deb=$(printf '%s\n' "$out" | grep '\.deb$' | tail -n 1)
[[ -n "$deb" && -f "$deb" ]] || die "cargo deb printed no .deb path (output: $out)"
deb=$(realpath "$deb")
say "built $deb"
printf '%s\n' "$deb"
