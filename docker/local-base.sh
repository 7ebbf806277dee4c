#!/usr/bin/env bash
# Assembles a minimal base image from THIS machine's Node.js, for building docker/Dockerfile
# where registry base images (node:20-bookworm-slim) cannot be pulled (the CI and
# development machines): `buildah from scratch` + the node binary, npm, /bin/sh (dash) and
# /usr/bin/env, the shared libraries ldd names for them, /etc/passwd with root and node (uid 1000, as in
# the official node images), CA certificates and the registry setting for npm. It is what the official image offers
# the Dockerfile, nothing more: no package manager, no coreutils.
#
# Usage: docker/local-base.sh IMAGE_NAME   (extra buildah global options in BUILDAH_OPTS,
# e.g. "--root DIR --runroot DIR"). Prints the image name. Idempotent: an existing image
# of that name is kept (the caller keys the name by `node --version`).
set -euo pipefail
name=${1:?usage: docker/local-base.sh IMAGE_NAME}
# shellcheck disable=SC2206
bh=(buildah ${BUILDAH_OPTS:-})
if "${bh[@]}" inspect --type image "$name" >/dev/null 2>&1; then echo "$name"; exit 0; fi

node_bin=$(readlink -f "$(command -v node)")
npm_dir=$(dirname "$(readlink -f "$(command -v npm)")")/..
npm_dir=$(readlink -f "$npm_dir")
test -f "$npm_dir/package.json" || { echo "npm not found beside node ($npm_dir): install npm" >&2; exit 1; }
sh_bin=$(readlink -f /bin/sh)
# npm and npx start with "#!/usr/bin/env node".
env_bin=$(readlink -f /usr/bin/env)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{usr/local/bin,usr/local/lib/node_modules,bin,etc/ssl/certs,tmp,root}
chmod 1777 "$stage/tmp"
cp "$node_bin" "$stage/usr/local/bin/node"
cp -a "$npm_dir" "$stage/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$stage/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$stage/usr/local/bin/npx"
cp "$sh_bin" "$stage/bin/sh"
mkdir -p "$stage/usr/bin" && cp "$env_bin" "$stage/usr/bin/env"
# The libraries the dynamic linker will look for, at the same paths.
# Plus the rest of glibc that native addons dlopen (rolldown's binding needs librt.so.1; a
# Debian slim image has all of libc6), and the NSS modules for name resolution.
libdir=$(dirname "$(ldd "$node_bin" | grep -oE '/[^ ]+/libc\.so\.6')")
extra=$(ls "$libdir"/{librt,libresolv,libnss_files,libnss_dns,libutil,libanl}.so.* 2>/dev/null || true)
for lib in $( (ldd "$node_bin" "$sh_bin" "$env_bin" | grep -oE '/[^ ]+\.so[^ ]*'; echo "$extra") | sort -u); do
  mkdir -p "$stage$(dirname "$lib")"
  cp -L "$lib" "$stage$lib"
done
# npm inside the build reaches the registry this machine's npm is set up for, trusting the
# same CAs: the whole bundle (it may hold a local CA the registry path needs), named both to
# npm (cafile) and to node (NODE_EXTRA_CA_CERTS). Only the registry, the CA file and proxy
# settings are carried over, never an auth token; the base has no other npm settings.
ca=/etc/ssl/certs/ca-certificates.crt
test -f "$ca" || { echo "no CA bundle at $ca (apt-get install -y ca-certificates)" >&2; exit 1; }
cp "$ca" "$stage/etc/ssl/certs/"
mkdir -p "$stage/usr/local/etc"
{
  echo "registry=$(npm config get registry)"
  echo "cafile=$ca"
  echo "update-notifier=false"
  for k in proxy https-proxy noproxy; do
    v=$(npm config get "$k" 2>/dev/null || true)
    case "$v" in ''|null|undefined) ;; *) echo "$k=$v" ;; esac
  done
} >"$stage/usr/local/etc/npmrc"
printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n' >"$stage/etc/passwd"
printf 'root:x:0:\nnode:x:1000:\n' >"$stage/etc/group"
printf 'hosts: files dns\n' >"$stage/etc/nsswitch.conf"

ctr=$("${bh[@]}" from scratch)
"${bh[@]}" copy "$ctr" "$stage/" / >/dev/null
"${bh[@]}" config --env PATH=/usr/local/bin:/usr/bin:/bin --env NODE_VERSION="$(node --version)" \
  --env NODE_EXTRA_CA_CERTS="$ca" --cmd node "$ctr"
"${bh[@]}" commit --quiet --rm "$ctr" "$name" >/dev/null
echo "$name"
