# End-to-end checks of custom domains, TLS, the site-URL switch, the page cache TTL and the Redis
# object-cache drop-in. Sourced by run.sh (its helpers: play, jv, expect_changed, expect_fact, ok,
# fail, log; its state: work, host, user, root, db, conf, repo) while the environments a, b (two
# sites) and c (staging of a's site) are converged. Leaves a, b and c as it found them (deletable
# by run.sh's deletion section), removes every certificate it installed.

log "domains: custom certificate (domain-add), HTTPS serving, site URL switch, domain-remove"

rand=$(openssl rand -hex 4)
dom_host="shop-$rand.pressluft.test"
alias_host="alias-$rand.pressluft.test"
plain_host="plain-$rand.pressluft.test"
dom_id=$(python3 -c 'import uuid; print(uuid.uuid4())')
alias_id=$(python3 -c 'import uuid; print(uuid.uuid4())')
plain_id=$(python3 -c 'import uuid; print(uuid.uuid4())')
tls_dir="/etc/pressluft/tls/$dom_id"
certs="$work/certs"
mkdir -m 0700 -p "$certs"

# self-signed certificates (openssl): the domain's (with www), one for another name, another key;
# an expired one (python3-cryptography, openssl 3.0 cannot backdate) and an encrypted key
selfsigned() { # NAME CN SAN
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=$2" \
        -addext "subjectAltName=$3" -keyout "$certs/$1-key.pem" -out "$certs/$1-cert.pem" 2>/dev/null
}
selfsigned dom "$dom_host" "DNS:$dom_host,DNS:www.$dom_host"
selfsigned other "other-$rand.pressluft.test" "DNS:other-$rand.pressluft.test"
openssl pkey -in "$certs/dom-key.pem" -aes256 -passout pass:pltest -out "$certs/enc-key.pem"
/usr/bin/python3 - "$certs" "$dom_host" <<'EOF'
import datetime, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
d, host = sys.argv[1], sys.argv[2]
key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
now = datetime.datetime.utcnow()
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30)).not_valid_after(now - datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256()))
open(d + "/expired-cert.pem", "wb").write(cert.public_bytes(serialization.Encoding.PEM))
open(d + "/expired-key.pem", "wb").write(key.private_bytes(serialization.Encoding.PEM,
     serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
EOF

# vars files: dom_vars NAME JSON (merged into the node's vars)
dom_vars() {
    python3 - "$work" "$1" "$2" <<'EOF'
import json, sys
work, name, extra = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
data = json.load(open(work + "/node.json"))
for k, v in list(extra.items()):
    if isinstance(v, str) and v.startswith("@file:"):
        extra[k] = open(v[6:]).read()
data.update(extra)
json.dump(data, open("%s/%s.json" % (work, name), "w"), indent=1)
EOF
}
custom() { # NAME CERT KEY
    dom_vars "$1" "{\"domain_id\": \"$dom_id\", \"hostname\": \"$dom_host\", \"www_redirect\": true, \
\"tls_mode\": \"custom\", \"custom_certificate_pem\": \"@file:$certs/$2\", \"custom_private_key_pem\": \"@file:$certs/$3\"}"
}
custom dom-custom dom-cert.pem dom-key.pem
custom dom-wrongkey dom-cert.pem other-key.pem
custom dom-othername other-cert.pem other-key.pem
custom dom-expired expired-cert.pem expired-key.pem
custom dom-encrypted dom-cert.pem enc-key.pem
dom_vars dom-remove "{\"domain_id\": \"$dom_id\"}"
dom_vars alias-remove "{\"domain_id\": \"$alias_id\"}"

# ---- custom certificate --------------------------------------------------------------------------
play dom-custom domain-add dom-custom
expect_fact dom-custom certificate_changed true
expect_fact dom-custom certificate_present true
serial=$(openssl x509 -noout -serial -in "$certs/dom-cert.pem" | cut -d= -f2 | tr 'A-F' 'a-f' | sed 's/^0*//')
expect_fact dom-custom certificate_serial "$serial"
expect_fact dom-custom certificate_names "[\"$dom_host\", \"www.$dom_host\"]"
expect_fact dom-custom certificate_issuer "CN=$dom_host"
[ "$(jv "$work/facts-dom-custom.json" certificate_not_after)" = \
  "$(date -u -d "$(openssl x509 -noout -enddate -in "$certs/dom-cert.pem" | cut -d= -f2)" +%Y-%m-%dT%H:%M:%SZ)" ] \
    || fail "dom-custom: certificate_not_after differs from the certificate's"
[ "$(stat -c '%U %a' "$tls_dir")" = "root 700" ] || fail "$tls_dir: $(stat -c '%U %a' "$tls_dir"), expected root 700"
[ "$(stat -c '%U %a' "$tls_dir/privkey.pem")" = "root 600" ] || fail "privkey.pem: $(stat -c '%U %a' "$tls_dir/privkey.pem")"
cmp -s "$tls_dir/fullchain.pem" "$certs/dom-cert.pem" || fail "fullchain.pem is not the uploaded certificate"
openssl pkey -in "$tls_dir/privkey.pem" -noout 2>/dev/null || fail "privkey.pem is not a key"
play dom-custom-again domain-add dom-custom
expect_changed dom-custom-again 0
expect_fact dom-custom-again certificate_changed false
expect_fact dom-custom-again certificate_serial "$serial"
ok "domain-add (custom): validated, installed 0600 in a 0700 directory, facts of the certificate; again changed=0"

sums=$(sha256sum "$tls_dir"/*.pem)
for bad in wrongkey othername expired encrypted; do
    play "dom-$bad" domain-add "dom-$bad" 2
    expect_fact "dom-$bad" error_code CERTIFICATE_INVALID
    expect_fact "dom-$bad" certificate_serial "$serial"
    [ "$(sha256sum "$tls_dir"/*.pem)" = "$sums" ] || fail "dom-$bad: the installed files changed"
done
ok "wrong key, name not covered, expired, encrypted key: CERTIFICATE_INVALID, installed files untouched"

# ---- an environment serving the domain ---------------------------------------------------------
preview_a=$(jv "$work/a.json" preview_url)
mysql_a() { mariadb -N -B "${db[a]}" -e "$1"; }
# a nested serialized option holding the old URL (array, object, JSON inside)
nested_hex=$(php -r '$u = $argv[1]; $o = new stdClass; $o->link = $u . "/about/";
echo bin2hex(serialize(array("level1" => array("url" => $u . "/shop/?a=1", "list" => array($u, "x")),
    "obj" => $o, "json" => json_encode(array("u" => $u . "/j/")))));' "$preview_a")
mysql_a "INSERT INTO wp_options (option_name, option_value, autoload) VALUES ('pl_test_nested', UNHEX('$nested_hex'), 'no')"
nested_check() { # URL: the option unserializes and holds URL everywhere
    mysql_a "SELECT HEX(option_value) FROM wp_options WHERE option_name='pl_test_nested'" | php -r '
$v = unserialize(hex2bin(trim(stream_get_contents(STDIN)))); $u = $argv[1];
$ok = is_array($v) && $v["level1"]["url"] === "$u/shop/?a=1" && $v["level1"]["list"][0] === $u
    && $v["obj"] instanceof stdClass && $v["obj"]->link === "$u/about/" && json_decode($v["json"], true)["u"] === "$u/j/";
exit($ok ? 0 : 1);' "$1"
}
nested_check "$preview_a" || fail "test option not stored as expected"
domains_json="[{\"id\": \"$dom_id\", \"hostname\": \"$dom_host\", \"primary\": true, \"www_redirect\": true, \"tls\": true},
 {\"id\": \"$alias_id\", \"hostname\": \"$alias_host\", \"primary\": false, \"www_redirect\": false, \"tls\": true},
 {\"id\": \"$plain_id\", \"hostname\": \"$plain_host\", \"primary\": false, \"www_redirect\": true, \"tls\": false}]"
python3 - "$work" "$dom_host" "$domains_json" <<'EOF'
import json, sys
work, host, domains = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
a = json.load(open(work + "/a.json"))
a.update(site_url="https://" + host, domains=domains, fastcgi_cache_ttl_seconds=600)
json.dump(a, open(work + "/a-dom.json", "w"), indent=1)
EOF
play dom-a site-create a-dom
expect_fact dom-a healthy true
expect_fact dom-a health_url "https://$dom_host"
expect_fact dom-a site_url "https://$dom_host"
expect_fact dom-a site_url_changed true
expect_fact dom-a site_url_previous "$preview_a"
expect_fact dom-a domains_without_certificate "[\"$alias_id\"]"
expect_fact dom-a fastcgi_cache_ttl_seconds 600
grep -q 'fastcgi_cache_valid 200 301 302 600s;' "${conf[a]}" && grep -q 'inactive=600s' "${conf[a]}" \
    || fail "a: page cache TTL 600 s not rendered"
[ "$(mysql_a "SELECT option_value FROM wp_options WHERE option_name IN ('home','siteurl')" | sort -u)" = "https://$dom_host" ] \
    || fail "a: home/siteurl are not https://$dom_host"
nested_check "https://$dom_host" || fail "a: the nested serialized option was not rewritten to https://$dom_host"
ok "site-create with the domain as primary TLS domain: healthy on https://$dom_host, home/siteurl switched, serialized data rewritten, TTL 600 s"

https() { curl -sS --max-time 10 -k --resolve "$1:443:127.0.0.1" -D - -o "$work/body.html" "https://$1$2" | tr -d '\r'; }
http() { curl -sS --max-time 10 --resolve "$1:80:127.0.0.1" -D - -o /dev/null "http://$1$2" | tr -d '\r'; }
headers=$(https "$dom_host" /)
grep -q '^HTTP/[0-9.]* 200' <<<"$headers" || fail "https://$dom_host/: $headers"
grep -qi '^strict-transport-security: max-age=31536000' <<<"$headers" || fail "https://$dom_host/: no HSTS header"
grep -qi '^x-content-type-options: nosniff' <<<"$headers" || fail "https://$dom_host/: no security headers"
grep -q "<title>$(jv "$work/a.json" site_title)" "$work/body.html" && grep -q "https://$dom_host/wp-" "$work/body.html" \
    || fail "https://$dom_host/ does not serve a's WordPress with https links"
echo | openssl s_client -connect 127.0.0.1:443 -servername "$dom_host" 2>/dev/null | openssl x509 -noout -serial \
    | grep -qi "=0*$serial\$" || fail "nginx does not present the installed certificate for $dom_host"
expect_redirect() { # DESCRIPTION HEADERS LOCATION
    grep -q '^HTTP/[0-9.]* 301' <<<"$2" && grep -qi "^location: $3\$" <<<"$2" || fail "$1: expected 301 to $3, got: $2"
}
expect_redirect "http://$dom_host/x?y=1" "$(http "$dom_host" '/x?y=1')" "https://$dom_host/x?y=1"
expect_redirect "http://www.$dom_host/p" "$(http "www.$dom_host" /p)" "https://$dom_host/p"
expect_redirect "https://www.$dom_host/p" "$(https "www.$dom_host" /p)" "https://$dom_host/p"
expect_redirect "http://$alias_host/q" "$(http "$alias_host" /q)" "https://$dom_host/q"
expect_redirect "http://$plain_host/r" "$(http "$plain_host" /r)" "https://$dom_host/r"
expect_redirect "http://www.$plain_host/s" "$(http "www.$plain_host" /s)" "http://$plain_host/s"
token="pl-test-$rand"
mkdir -p /var/www/acme/.well-known/acme-challenge
echo "$token" > "/var/www/acme/.well-known/acme-challenge/$token"
for h in "$dom_host" "www.$dom_host" "$alias_host" "$plain_host" "unknown-$rand.pressluft.test"; do
    [ "$(curl -sS --max-time 5 --resolve "$h:80:127.0.0.1" "http://$h/.well-known/acme-challenge/$token")" = "$token" ] \
        || fail "http://$h/.well-known/acme-challenge/ not served from /var/www/acme"
done
rm -f "/var/www/acme/.well-known/acme-challenge/$token"
ok "HTTPS with HSTS and the installed certificate; HTTP -> HTTPS, www -> apex, other domains -> site URL; ACME challenge served for every name (also unknown ones)"

# a new certificate for a domain in use (renewal): installed, nginx reloaded, served
selfsigned renew "$dom_host" "DNS:$dom_host,DNS:www.$dom_host"
custom dom-renew renew-cert.pem renew-key.pem
play dom-renew domain-add dom-renew
expect_fact dom-renew certificate_changed true
grep -q 'nginx reloaded' "$work/facts-dom-renew.json" || fail "dom-renew: nginx not reloaded for a certificate in use"
renew_serial=$(jv "$work/facts-dom-renew.json" certificate_serial)
for _ in $(seq 1 50); do
    echo | openssl s_client -connect 127.0.0.1:443 -servername "$dom_host" 2>/dev/null | openssl x509 -noout -serial \
        | grep -qi "=0*$renew_serial\$" && break
    sleep 0.1
done
echo | openssl s_client -connect 127.0.0.1:443 -servername "$dom_host" 2>/dev/null | openssl x509 -noout -serial \
    | grep -qi "=0*$renew_serial\$" || fail "dom-renew: nginx does not serve the new certificate"
play dom-remove-in-use domain-remove dom-remove 2
[ -f "$tls_dir/privkey.pem" ] || fail "domain-remove deleted a certificate still in use"
grep -q 'still used by' "$work/facts-dom-remove-in-use.json" || fail "dom-remove-in-use: no reason given"
ok "a new certificate for a domain in use: installed, nginx reloaded, served; domain-remove refused while in use"

play dom-a-again site-create a-dom
expect_changed dom-a-again 0
expect_fact dom-a-again site_url_changed false
play dom-health health-check a-dom
expect_fact dom-health healthy true
expect_fact dom-health health_url "https://$dom_host"
ok "site-create again: changed=0; health-check with site_url checks https://$dom_host"

play dom-a-back site-create a
expect_fact dom-a-back healthy true
expect_fact dom-a-back site_url "$preview_a"
expect_fact dom-a-back site_url_changed true
expect_fact dom-a-back site_url_previous "https://$dom_host"
expect_fact dom-a-back domains '[]'
[ "$(mysql_a "SELECT option_value FROM wp_options WHERE option_name IN ('home','siteurl')" | sort -u)" = "$preview_a" ] \
    || fail "a: home/siteurl not back at $preview_a"
nested_check "$preview_a" || fail "a: the nested serialized option was not rewritten back"
mysql_a "DELETE FROM wp_options WHERE option_name='pl_test_nested'"
set +e
curl -sS --max-time 5 -k --resolve "$dom_host:443:127.0.0.1" -o /dev/null "https://$dom_host/" 2>/dev/null; rc_https=$?
curl -sS --max-time 5 --resolve "$dom_host:80:127.0.0.1" -o /dev/null "http://$dom_host/" 2>/dev/null; rc_http=$?
set -e
[ "$rc_https" = 35 ] && [ "$rc_http" = 52 ] || fail "$dom_host still served after its removal (curl rc https $rc_https, http $rc_http)"
! grep -q "$dom_id" "${conf[a]}" || fail "a's server block still mentions the domain"
ok "domains removed and site_url back to the preview URL: home back, serialized data back, the host no longer served"

play dom-remove domain-remove dom-remove
expect_changed dom-remove 1
[ ! -e "$tls_dir" ] || fail "$tls_dir still exists after domain-remove"
play dom-remove-again domain-remove dom-remove
expect_changed dom-remove-again 0
play alias-remove domain-remove alias-remove
expect_changed alias-remove 0
ok "domain-remove deletes the certificate files; again (and for a domain without files) changed=0"
grep -v -e '-----' "$certs"/*-key.pem | cut -d: -f2- | grep -v '^$' > "$certs/key-lines"
! grep -qF -f "$certs/key-lines" "$work"/dom-*.log "$work"/facts-dom-*.json \
    || fail "private key material in a log or facts file"
ok "no private key material in any log or facts file of the domain runs"

# ---- ACME (pebble) -----------------------------------------------------------------------------
log "domains: ACME through certbot against pebble (HTTP-01 through nginx's default server)"
acme_was_running=0
"$repo/scripts/acme-test-server.sh" status >/dev/null 2>&1 && acme_was_running=1
eval "$("$repo/scripts/acme-test-server.sh" start)"
acme_id=$(python3 -c 'import uuid; print(uuid.uuid4())')
acme_host="acme-$rand.pressluft.test"
acme_vars() { # NAME HOST DIRECTORY [force]
    dom_vars "$1" "{\"domain_id\": \"$acme_id\", \"hostname\": \"$2\", \"www_redirect\": true, \"tls_mode\": \"acme\",
\"acme_directory_url\": \"$3\", \"acme_email\": \"\", \"acme_ca_file\": \"$ACME_CA_FILE\", \"force_renew\": ${4:-false}}"
}
acme_vars acme "$acme_host" "$ACME_DIRECTORY_URL"
acme_vars acme-force "$acme_host" "$ACME_DIRECTORY_URL" true
acme_vars acme-down "$acme_host" "https://127.0.0.1:14999/dir"
acme_vars acme-dnsfail "dnsfail-$rand.pressluft.test" "$ACME_DIRECTORY_URL"
dom_vars acme-remove "{\"domain_id\": \"$acme_id\"}"
play acme domain-add acme
expect_fact acme certificate_changed true
expect_fact acme certificate_names "[\"$acme_host\", \"www.$acme_host\"]"
grep -q '"certificate_issuer": "CN=Pebble Intermediate' "$work/facts-acme.json" || fail "acme: issuer is not pebble's"
[ "$(stat -c '%a' "/etc/pressluft/tls/$acme_id/privkey.pem")" = 600 ] || fail "acme: privkey.pem not 0600"
[ -d "/etc/pressluft/letsencrypt/renewal" ] && [ ! -e "/etc/letsencrypt/renewal/$acme_id.conf" ] \
    || fail "acme: certbot state not in /etc/pressluft/letsencrypt"
acme_serial=$(jv "$work/facts-acme.json" certificate_serial)
play acme-again domain-add acme
expect_changed acme-again 0
expect_fact acme-again certificate_changed false
expect_fact acme-again certificate_serial "$acme_serial"
play acme-force domain-add acme-force
expect_fact acme-force certificate_changed true
[ "$(jv "$work/facts-acme-force.json" certificate_serial)" != "$acme_serial" ] || fail "acme-force: same serial"
play acme-down domain-add acme-down 2
expect_fact acme-down error_code ACME_UNAVAILABLE
curl -sS -o /dev/null -d "{\"host\": \"dnsfail-$rand.pressluft.test\"}" "$ACME_DNS_MANAGEMENT_URL/set-servfail"
play acme-dnsfail domain-add acme-dnsfail 2
curl -sS -o /dev/null -d "{\"host\": \"dnsfail-$rand.pressluft.test\"}" "$ACME_DNS_MANAGEMENT_URL/clear-servfail"
expect_fact acme-dnsfail error_code ACME_CHALLENGE_FAILED
grep -q "dnsfail-$rand.pressluft.test" "$work/facts-acme-dnsfail.json" || fail "acme-dnsfail: certbot's report missing in error"
[ "$(jv "$work/facts-acme-dnsfail.json" certificate_serial)" = "$(jv "$work/facts-acme-force.json" certificate_serial)" ] \
    || fail "acme-dnsfail: the installed certificate changed"
play acme-remove domain-remove acme-remove
expect_changed acme-remove 1
for p in "/etc/pressluft/tls/$acme_id" "/etc/pressluft/letsencrypt/live/$acme_id" \
         "/etc/pressluft/letsencrypt/archive/$acme_id" "/etc/pressluft/letsencrypt/renewal/$acme_id.conf"; do
    [ ! -e "$p" ] || fail "acme-remove: $p still exists"
done
[ "$acme_was_running" = 1 ] || "$repo/scripts/acme-test-server.sh" stop
ok "certbot against pebble: issued (www too), kept until expiring (changed=0), force-renewed; unreachable directory ACME_UNAVAILABLE, failing challenge (DNS SERVFAIL) ACME_CHALLENGE_FAILED; domain-remove deletes the lineage"

# ---- object cache --------------------------------------------------------------------------------
log "object cache: Pressluft's Redis drop-in"
dropin_src="$repo/ansible/files/pressluft-object-cache.php"
# the drop-in on its own: API semantics on Redis with a test prefix, then the fallback without Redis
oc_prefix="pressluft_test_$rand:"
php -d display_errors=stderr -r '
define("ABSPATH", "/tmp/"); define("WP_REDIS_PREFIX", $argv[2]);
if ($argv[3] === "down") { define("WP_REDIS_PORT", 1); }
require $argv[1];
function check($c, $what) { if (!$c) { fwrite(STDERR, "drop-in: $what\n"); exit(1); } }
wp_cache_init();
global $wp_object_cache;
check($wp_object_cache->redis_connected() === ($argv[3] === "up"), "Redis " . $argv[3]);
wp_cache_add_non_persistent_groups(array("np"));
check(wp_cache_set("k", array("a" => 1)) && wp_cache_get("k") === array("a" => 1), "set/get");
check(wp_cache_add("k", 2) === false && wp_cache_add("n", 5, "g") === true, "add");
check(wp_cache_incr("n", 3, "g") === 8 && wp_cache_decr("n", 10, "g") === 0 && wp_cache_incr("none") === false, "incr/decr");
check(wp_cache_replace("missing", 1) === false && wp_cache_replace("k", "v") === true, "replace");
check(wp_cache_set("f", false) && wp_cache_get("f", "", false, $found) === false && $found === true, "false value");
check(wp_cache_get_multiple(array("k", "n", "x"), "") === array("k" => "v", "n" => false, "x" => false), "get_multiple");
wp_cache_set("p", "mem", "np");
wp_cache_flush_runtime();
check(wp_cache_get("p", "np") === false, "non-persistent group after flush_runtime");
if ($argv[3] === "up") {
    check(wp_cache_get("k") === "v" && wp_cache_get("n", "g") === 0, "read back from Redis after flush_runtime");
    check(wp_cache_flush_group("g") && wp_cache_get("n", "g", true) === false && wp_cache_get("k", "", true) === "v", "flush_group");
    check(wp_cache_delete("k") && wp_cache_get("k", "", true) === false, "delete");
    wp_cache_set("z", 1);
}
check(wp_cache_flush(), "flush");
echo "ok";' "$dropin_src" "$oc_prefix" up >/dev/null || fail "drop-in API on Redis"
[ "$(redis-cli --scan --pattern "$oc_prefix*" | wc -l)" = 0 ] || fail "drop-in: wp_cache_flush left keys of its prefix"
php -d display_errors=stderr -r 'define("ABSPATH", "/tmp/"); define("WP_REDIS_PREFIX", $argv[2]); define("WP_REDIS_PORT", 1);
require $argv[1]; wp_cache_init(); global $wp_object_cache;
exit(!$wp_object_cache->redis_connected() && wp_cache_set("k", "v") && wp_cache_get("k") === "v" ? 0 : 1);' \
    "$dropin_src" "$oc_prefix" || fail "drop-in without Redis: no in-process fallback"
ok "drop-in API (add/set/get/get_multiple/replace/incr/decr/delete/flush_group/non-persistent groups) on Redis; in-process fallback when Redis is unreachable"

for e in a b; do
    python3 - "$work" "$e" <<'EOF'
import json, sys
work, e = sys.argv[1], sys.argv[2]
data = json.load(open("%s/%s.json" % (work, e)))
data["redis_cache_enabled"] = True
json.dump(data, open("%s/%s-oc.json" % (work, e), "w"), indent=1)
EOF
    play "oc-$e" site-create "$e-oc"
    expect_fact "oc-$e" object_cache_dropin true
    expect_fact "oc-$e" healthy true
done
dropin_a="${root[a]}/current/wp-content/object-cache.php"
cmp -s "$dropin_a" "$dropin_src" || fail "a: wp-content/object-cache.php is not Pressluft's drop-in"
[ "$(stat -c '%U:%G %a' "$(readlink -f "$dropin_a")")" = "${user[a]}:www-data 640" ] || fail "a: drop-in owner/mode"
wpphp() { # ENV CODE: PHP with WordPress loaded, as the environment's user
    (cd / && runuser -u "${user[$1]}" -- php -d display_errors=stderr -r "define('WP_USE_THEMES', false);
\$_SERVER['HTTP_HOST'] = '${host[$1]}'; require '${root[$1]}/current/wp-load.php'; $2")
}
[ "$(wpphp a 'wp_cache_set("pl_oc_test", "value-a", "pltest"); echo wp_using_ext_object_cache() && $GLOBALS["wp_object_cache"]->redis_connected() ? "redis" : "none";')" = redis ] \
    || fail "a: WordPress does not use the Redis drop-in"
wpphp b 'wp_cache_set("pl_oc_test", "value-b", "pltest");'
key_a="pressluft_$(jv "$work/a.json" environment_id):pltest:pl_oc_test"
key_b="pressluft_$(jv "$work/b.json" environment_id):pltest:pl_oc_test"
[ "$(redis-cli GET "$key_a")" = 's:7:"value-a";' ] && [ "$(redis-cli GET "$key_b")" = 's:7:"value-b";' ] \
    || fail "the keys are not in Redis under each environment's prefix"
[ "$(wpphp a 'echo wp_cache_get("pl_oc_test", "pltest");')" = value-a ] || fail "a: own value not read back"
[ "$(wpphp b 'echo wp_cache_get("pl_oc_test", "pltest");')" = value-b ] || fail "b: own value not read back"
wpphp a 'wp_cache_flush();'
[ "$(redis-cli EXISTS "$key_a")" = 0 ] && [ "$(redis-cli EXISTS "$key_b")" = 1 ] || fail "flush in a did not keep b's key (or kept a's)"
[ "$(redis-cli --scan --pattern "pressluft_$(jv "$work/a.json" environment_id):*" | wc -l)" = 0 ] \
    || fail "flush in a left keys with a's prefix"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: ${host[a]}" http://127.0.0.1/wp-login.php)
[ "$code" = 200 ] || fail "a: wp-login.php with the object cache: HTTP $code"
ok "same key in a and b: each reads its own value from Redis (own prefix); flush in a leaves b's key"

hash_before=$(jv "$work/facts-oc-a.json" config_hash)
rm -f "$dropin_a"
play oc-a-deleted site-create a-oc
expect_changed oc-a-deleted 1
expect_fact oc-a-deleted object_cache_dropin true
expect_fact oc-a-deleted config_hash "$hash_before"
cmp -s "$dropin_a" "$dropin_src" || fail "a: drop-in deleted by hand not put back"
echo '// hand edit' >> "$dropin_a"
play oc-a-edited site-create a-oc
expect_changed oc-a-edited 1
cmp -s "$dropin_a" "$dropin_src" || fail "a: drop-in edited by hand not restored"
python3 - "$dropin_a" "${conf[a]}" "${pool[a]}" "$hash_before" <<'EOF' || fail "config_hash is not sha256(server block + NUL + pool + NUL + drop-in)"
import hashlib, sys
dropin, block, pool, want = sys.argv[1:]
data = open(block, "rb").read() + b"\0" + open(pool, "rb").read() + b"\0" + open(dropin, "rb").read()
sys.exit(0 if hashlib.sha256(data).hexdigest() == want else 1)
EOF
ok "drop-in deleted or edited by hand: put back by the next converge; config_hash covers it"

for e in a b; do
    play "oc-$e-off" site-create "$e"
    expect_fact "oc-$e-off" object_cache_dropin false
    expect_fact "oc-$e-off" healthy true
done
[ ! -e "$dropin_a" ] || fail "a: drop-in not removed with redis_cache_enabled false"
[ "$(redis-cli EXISTS "$key_b")" = 0 ] || fail "b: Redis keys not emptied when the drop-in went"
echo '<?php // not Pressluft'"'"'s' > "${root[c]}/current/wp-content/object-cache.php"
play oc-c-foreign env-create c
[ -e "${root[c]}/current/wp-content/object-cache.php" ] || fail "c: a foreign object-cache.php was removed"
expect_fact oc-c-foreign object_cache_dropin false
rm -f "${root[c]}/current/wp-content/object-cache.php"
ok "redis_cache_enabled false removes Pressluft's drop-in (and the keys), never a foreign one"
