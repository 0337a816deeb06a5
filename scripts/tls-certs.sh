#!/usr/bin/env bash
# Self-signed TLS material for the local broker's SSL listener (development and tests only).
#
#   scripts/tls-certs.sh [DIR]    default DIR: ~/.cache/kafka-pipeline/tls
#
# Writes, unless DIR/.complete exists:
#   ca.pem, ca.key          a CA valid 10 years (clients trust it: -X ssl.ca.location=DIR/ca.pem)
#   broker.pem, broker.key  the broker's certificate for localhost / 127.0.0.1, signed by the CA
#   broker.p12              broker key + certificate chain as a PKCS#12 keystore for Kafka
#   password                the keystore password (a fixed development value, not a secret)
# Needs openssl. Nothing here belongs in production: use your organisation's CA there.
set -euo pipefail

dir=${1:-${KAFKA_PIPELINE_CACHE:-$HOME/.cache/kafka-pipeline}/tls}
if [[ -f "$dir/.complete" ]]; then
  echo "$dir"
  exit 0
fi
command -v openssl >/dev/null || { echo "tls-certs.sh: openssl is required" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"
password=kafka-pipeline-dev
days=3650

openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days "$days" \
  -keyout ca.key -out ca.pem -subj "/CN=kafka-pipeline dev CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  2>/dev/null
openssl req -newkey rsa:2048 -nodes -sha256 -keyout broker.key -out broker.csr \
  -subj "/CN=localhost" 2>/dev/null
cat >broker.ext <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
EXT
openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days "$days" \
  -sha256 -extfile broker.ext -out broker.pem 2>/dev/null
openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem -name broker \
  -out broker.p12 -passout "pass:$password"
printf '%s\n' "$password" >password
rm -f broker.csr broker.ext ca.srl
chmod 600 ca.key broker.key broker.p12
touch .complete
echo "$dir"
