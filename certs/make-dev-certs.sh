#!/usr/bin/env bash
# Makes a local certificate authority and a server certificate for localhost / 127.0.0.1 / ::1,
# for trying Junction's TLS listener on a workstation. Nothing made here belongs in git.
#
#   certs/make-dev-certs.sh [DIR]      # default DIR: the directory of this script
#
# Produces DIR/dev-ca.pem (trust it in a browser or pass it to `curl --cacert`), DIR/dev.pem (the
# server chain: leaf then CA) and DIR/dev-key.pem (the server key), as conf/junction.yaml expects.
set -euo pipefail
dir=${1:-$(cd "$(dirname "$0")" && pwd)}
mkdir -p "$dir"
cd "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
    -subj "/CN=Junction development CA" -keyout "$tmp/ca-key.pem" -out dev-ca.pem 2>/dev/null

cat > "$tmp/server.ext" <<'EXT'
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
EXT
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=localhost" -keyout dev-key.pem -out "$tmp/server.csr" 2>/dev/null
openssl x509 -req -in "$tmp/server.csr" -CA dev-ca.pem -CAkey "$tmp/ca-key.pem" -CAcreateserial \
    -CAserial "$tmp/ca.srl" -days 365 -extfile "$tmp/server.ext" -out "$tmp/leaf.pem" 2>/dev/null
cat "$tmp/leaf.pem" dev-ca.pem > dev.pem
chmod 600 dev-key.pem
echo "wrote $dir/dev.pem, $dir/dev-key.pem and $dir/dev-ca.pem (the CA's key was discarded)"
