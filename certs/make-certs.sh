#!/usr/bin/env bash
# Creates development / test certificates for esgate's mutual-TLS uplink with the openssl CLI.
#
#   certs/make-certs.sh OUTDIR [CLIENT_CN]        (CLIENT_CN defaults to 410103, a district division code)
#
# Files written to OUTDIR (keys are generated here, at test or demo time, and are never committed):
#   ca.pem / ca.key                  development CA ("the province's CA"): the receiver and the gateway trust it
#   server.pem / server.key          receiver certificate, signed by ca; SAN IP:127.0.0.1, DNS:localhost
#   client.pem / client.key          gateway client certificate, subject CN=<CLIENT_CN>, signed by ca
#   rogue-ca.pem / rogue-ca.key      a second CA nobody trusts (negative tests)
#   rogue-client.pem / rogue-client.key   client certificate CN=<CLIENT_CN> signed by rogue-ca
#   rogue-server.pem / rogue-server.key   receiver certificate (SAN 127.0.0.1, localhost) signed by rogue-ca
#   expired-client.pem / expired-client.key   client certificate CN=<CLIENT_CN> signed by ca, valid only in 2020
#
# Idempotent: files that already exist are kept; a certificate is (re)issued only when it or its key is
# missing, or when its CA was just (re)issued. Keys are EC P-256, unencrypted PEM (PKCS#8), mode 0600. Validity: CAs 3650 days, leaves DAYS
# (environment, default 825).
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 OUTDIR [CLIENT_CN]" >&2
    exit 2
fi
out=$1
client_cn=${2:-410103}
days=${DAYS:-825}
case "$client_cn" in
    *[!A-Za-z0-9._-]* | "") echo "make-certs: CLIENT_CN must be [A-Za-z0-9._-]+, got '$client_cn'" >&2; exit 2 ;;
esac
command -v openssl >/dev/null || { echo "make-certs: openssl not found" >&2; exit 1; }
mkdir -p "$out"
umask 077

key() { # key NAME: create NAME.key unless present
    [ -s "$out/$1.key" ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out/$1.key" 2>/dev/null
}

reissued=" "   # names of CAs created in this run: their leaves are reissued too

ca() { # ca NAME SUBJECT
    if [ ! -s "$out/$1.pem" ] || [ ! -s "$out/$1.key" ]; then
        rm -f "$out/$1.pem"; key "$1"; reissued="$reissued$1 "
        openssl req -x509 -new -key "$out/$1.key" -sha256 -days 3650 -subj "$2" \
            -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -addext "subjectKeyIdentifier=hash" \
            -out "$out/$1.pem"
    fi
}

needs_issue() { # needs_issue NAME ISSUER
    [ ! -s "$out/$1.pem" ] || [ ! -s "$out/$1.key" ] || [[ "$reissued" == *" $2 "* ]]
}

leaf() { # leaf NAME ISSUER SUBJECT EXTENSIONS...
    local name=$1 issuer=$2 subject=$3; shift 3
    if needs_issue "$name" "$issuer"; then
        rm -f "$out/$name.pem"; key "$name"
        local ext; ext=$(mktemp "$out/.ext.XXXXXX")
        printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
            "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" "$@" > "$ext"
        openssl req -new -key "$out/$name.key" -subj "$subject" -out "$out/$name.csr"
        openssl x509 -req -in "$out/$name.csr" -CA "$out/$issuer.pem" -CAkey "$out/$issuer.key" \
            -set_serial "0x$(openssl rand -hex 16)" -sha256 -days "$days" -extfile "$ext" \
            -out "$out/$name.pem" 2>/dev/null
        rm -f "$out/$name.csr" "$ext"
    fi
}

expired_leaf() { # expired_leaf NAME ISSUER SUBJECT: validity 2020-01-01..2020-01-02 (needs `openssl ca`)
    local name=$1 issuer=$2 subject=$3
    if needs_issue "$name" "$issuer"; then
        rm -f "$out/$name.pem"; key "$name"
        local db; db=$(mktemp -d "$out/.ca.XXXXXX")
        : > "$db/index.txt"
        cat > "$db/ca.cnf" <<CNF
[ca]
default_ca = dev
[dev]
database = $db/index.txt
new_certs_dir = $db
serial = $db/serial
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
x509_extensions = ext
[any]
organizationName = optional
commonName = supplied
[ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
CNF
        openssl rand -hex 16 > "$db/serial"
        openssl req -new -key "$out/$name.key" -subj "$subject" -out "$db/req.csr"
        openssl ca -batch -notext -config "$db/ca.cnf" -cert "$out/$issuer.pem" -keyfile "$out/$issuer.key" \
            -startdate 20200101000000Z -enddate 20200102000000Z -in "$db/req.csr" -out "$out/$name.pem" 2>/dev/null
        rm -rf "$db"
    fi
}

server_ext=("extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost")
client_ext=("extendedKeyUsage=clientAuth")

ca ca "/O=esgate development/CN=esgate development CA"
leaf server ca "/O=esgate development/CN=localhost" "${server_ext[@]}"
leaf client ca "/O=esgate development/CN=$client_cn" "${client_ext[@]}"
expired_leaf expired-client ca "/O=esgate development/CN=$client_cn"

ca rogue-ca "/O=untrusted/CN=untrusted test CA"
leaf rogue-client rogue-ca "/O=untrusted/CN=$client_cn" "${client_ext[@]}"
leaf rogue-server rogue-ca "/O=untrusted/CN=localhost" "${server_ext[@]}"

chmod 0644 "$out"/*.pem
for c in server client; do openssl verify -CAfile "$out/ca.pem" "$out/$c.pem" >/dev/null; done
for c in rogue-client rogue-server; do openssl verify -CAfile "$out/rogue-ca.pem" "$out/$c.pem" >/dev/null; done
echo "make-certs: certificates in $out (client CN=$client_cn)"
