# Sourced by the install scripts: apt_ensure PKG... installs the Debian packages that are missing.
# A policy-rc.d that exits 101 keeps the packages' own daemons (etcd, MariaDB, RabbitMQ...) from
# starting: stackfleet starts them as its own children. Ours is removed afterwards; a
# pre-existing one is left alone. Needs a `say` function.
apt_ensure() {
  local missing=() pkg own_policy=""
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if ((${#missing[@]} == 0)); then
    say "apt: $* already installed"
    return
  fi
  say "apt: installing ${missing[*]}"
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" || {
    [[ -n $own_policy ]] && rm -f /usr/sbin/policy-rc.d; return 1; }
  [[ -n $own_policy ]] && rm -f /usr/sbin/policy-rc.d
  return 0
}
