#!/usr/bin/env bash
# The offline stand-in for SAM's python3.13 emulation image (public.ecr.aws/lambda/python:3.13), for machines
# that reach no image registry. `make local-image` runs it; `make sam-local-invoke` passes the result to
# `sam local invoke --invoke-image`.
#
#   build/local-image/build.sh IMAGE RUNTIME_PROVIDED_DIR UV
#
# What it is: Debian trixie (debootstrap --variant=minbase) with Debian's own python3 (3.13), awslambdaric and
# its two dependencies under /var/runtime (build/local-image/requirements.txt, hash-locked), the packages the
# Lambda runtime provides (boto3, botocore, ...: RUNTIME_PROVIDED_DIR, made by build/build_artifact.py
# --runtime-provided) beside them, and /var/runtime/bootstrap, which runs `python3 -m awslambdaric "$_HANDLER"`.
# SAM adds its own Runtime Interface Emulator (/var/rapid/aws-lambda-rie) on top, as it does to the official
# image. It is NOT Amazon Linux: its glibc is Debian's (2.41), newer than Amazon Linux 2023's (2.34), so a
# library that needs a newer glibc than Lambda has would still load here. The artifact's own check
# (tests/artifact/test_artifact.py: nothing may need more than GLIBC_2.34) is what guards that.
#
# The image carries the hash of its inputs as the label `recipe`; an image whose label matches is reused.
set -euo pipefail

image=${1:?image name}
runtime_provided=${2:?runtime-provided dir}
uv=${3:?uv}
here=$(cd "$(dirname "$0")" && pwd)

recipe=$( (cat "$here/build.sh" "$here/bootstrap" "$here/requirements.txt"; find "$runtime_provided" -name '*.dist-info' | sort) \
	| sha256sum | cut -c1-16)
if [ "$(docker image inspect -f '{{ index .Config.Labels "recipe" }}' "$image" 2>/dev/null)" = "$recipe" ]; then
	echo "[local-image] $image is up to date (recipe $recipe)" >&2
	exit 0
fi
command -v debootstrap >/dev/null || { echo "[local-image] debootstrap is missing: apt-get install debootstrap" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/local-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
started=$(date +%s)

echo "[local-image] debootstrap --variant=minbase trixie (Debian's python3) ..." >&2
# The mirror is debootstrap's default: the Debian archive that apt uses here too.
debootstrap --variant=minbase --include=python3 trixie "$rootfs" >"$work/debootstrap.log" 2>&1 \
	|| { tail -20 "$work/debootstrap.log" >&2; exit 1; }
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc "$rootfs"/usr/share/man

echo "[local-image] awslambdaric + the runtime-provided packages into /var/runtime ..." >&2
"$uv" pip install --quiet --target "$rootfs/var/runtime" --python-version 3.13 \
	--python-platform x86_64-manylinux_2_28 --only-binary :all: --no-deps --require-hashes \
	-r "$here/requirements.txt"
cp -a "$runtime_provided"/. "$rootfs/var/runtime/"
rm -f "$rootfs/var/runtime/.installed"
install -m 0755 "$here/bootstrap" "$rootfs/var/runtime/bootstrap"
mkdir -p "$rootfs/var/task" "$rootfs/opt"

echo "[local-image] docker import -> $image ..." >&2
previous=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
tar -C "$rootfs" -c . | docker import \
	--change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
	--change 'ENV LANG=C.UTF-8' \
	--change 'ENV TZ=:UTC' \
	--change 'ENV LAMBDA_TASK_ROOT=/var/task' \
	--change 'ENV LAMBDA_RUNTIME_DIR=/var/runtime' \
	--change 'WORKDIR /var/task' \
	--change "LABEL recipe=$recipe" \
	--change 'LABEL description="Offline stand-in for the python3.13 Lambda emulation image: Debian trixie, not Amazon Linux"' \
	- "$image" >/dev/null
# SAM layers its emulator on top as <repo>:rapid-<arch> and, with --skip-pull-image, reuses that image while it
# exists: drop the ones built on an older base so the next `sam local invoke` builds them on this one.
docker image ls --format '{{.Repository}}:{{.Tag}}' "${image%:*}" | { grep ':rapid-' || true; } \
	| xargs -r docker image rm -f >/dev/null
# and the previous build of this image, now untagged (kept if something still uses it)
[ -z "$previous" ] || docker image rm "$previous" >/dev/null 2>&1 || true
echo "[local-image] built $image in $(( $(date +%s) - started )) s" >&2
