#!/usr/bin/env bash
# Debian packages for tests/realprograms: programs doing real work, run
# eagerly and lazily on Debian's python3. Installs only what is missing
# (others may be installing at the same time: wait for the dpkg lock).
set -euo pipefail
pkgs=(black flake8 httpie python3-pygments pylint python3-sphinx python3-pytest python3-yaml python3-jinja2
      python3-docutils python3-markdown-it python3-chardet)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "real programs: all ${#pkgs[@]} Debian packages present"
  exit 0
fi
command -v apt-get >/dev/null 2>&1 || { echo "real programs: no apt-get; missing ${missing[*]}"; exit 0; }
start=$SECONDS
apt-get update -qq -o DPkg::Lock::Timeout=900
DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=900 "${missing[@]}"
echo "real programs: installed ${missing[*]} in $((SECONDS - start)) s"
