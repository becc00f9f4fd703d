#!/usr/bin/env bash
# Print a PATH like a machine with Python alone: a folder (the first argument) of links to
# every program of the system's folders except those the tests must not assume, the
# Debian programs some tiers use (espeak-ng, Prometheus, nftables/iptables, ip).
set -eu
dir=$1
rm -rf "$dir"; mkdir -p "$dir"
for d in /usr/local/bin /usr/bin /bin /usr/local/sbin /usr/sbin /sbin; do
  [ -d "$d" ] || continue
  for f in "$d"/*; do
    n=$(basename "$f")
    case "$n" in espeak*|speak-ng|prometheus*|promtool|nft|ip|iptables*) continue;; esac
    [ -e "$dir/$n" ] || ln -s "$f" "$dir/$n"
  done
done
echo "$dir"
