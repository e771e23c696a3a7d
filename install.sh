#!/usr/bin/env bash
# Installs everything pytest-sipflow needs into .venv (Python 3.11+), plus Debian's
# kamailio + kamailio-tls-modules (the registrar the real-mode tests run against),
# sip-tester (SIPp, the foreign SIP stack of those tests and the benchmarks), tshark, the
# foreign phones baresip-core and linphone-cli, rtpengine-daemon (a userspace media relay), and
# chromium (headless: the screenshots of the HTML reports in docs/img, scripts/screenshot_*.py).
set -euo pipefail
cd "$(dirname "$0")"

debs=(kamailio kamailio-tls-modules sip-tester tshark baresip-core linphone-cli rtpengine-daemon chromium)
missing=()
for deb in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "install ok installed" || missing+=("$deb")
done
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  else
    echo "note: not installed: ${missing[*]} (Debian packages; run ./install.sh as root to" \
         "install them). Without kamailio the real-mode tests are skipped." >&2
  fi
fi

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test]'
echo "installed: run the tests with  .venv/bin/python -m pytest"
