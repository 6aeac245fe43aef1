"""A minimal FastCGI client (one request, responder role) for talking to an environment's PHP-FPM
pool directly on its unix socket, without nginx: used to warm the pool's OPcache with the new
release's files while other work runs (module pressluft_environment). The protocol: FastCGI 1.0,
https://fastcgi-archives.github.io/FastCGI_Specification.html (records BEGIN_REQUEST, PARAMS,
STDIN; the answer in STDOUT records until END_REQUEST)."""
from __future__ import annotations

import socket
import struct

VERSION = 1
BEGIN_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = 1, 3, 4, 5, 6, 7
RESPONDER = 1
REQUEST_ID = 1


def _record(kind, content=b""):
    return struct.pack("!BBHHBx", VERSION, kind, REQUEST_ID, len(content), 0) + content


def _length(n):
    return struct.pack("!B", n) if n < 128 else struct.pack("!I", n | 0x80000000)


def _params(params):
    body = b""
    for key, value in params.items():
        k, v = key.encode(), str(value).encode()
        body += _length(len(k)) + _length(len(v)) + k + v
    out = b""
    for i in range(0, len(body), 65535):
        out += _record(PARAMS, body[i:i + 65535])
    return out + _record(PARAMS)


def request(sock_path, script, document_root, timeout=10.0):
    """Runs `script` (a file the pool may read) in the pool listening on `sock_path`, as a GET
    request. Returns (stdout bytes incl. the CGI headers, stderr bytes, the app's exit status).
    OSError / socket.timeout on connection problems."""
    params = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REQUEST_METHOD": "GET",
        "SCRIPT_FILENAME": script,
        "SCRIPT_NAME": "/" + script.rsplit("/", 1)[-1],
        "REQUEST_URI": "/" + script.rsplit("/", 1)[-1],
        "QUERY_STRING": "",
        "DOCUMENT_ROOT": document_root,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_LENGTH": "0",
    }
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(sock_path)
        conn.sendall(_record(BEGIN_REQUEST, struct.pack("!HB5x", RESPONDER, 0)) + _params(params) + _record(STDIN))
        buf, out, err = b"", b"", b""
        while True:
            while len(buf) < 8:
                chunk = conn.recv(65536)
                if not chunk:
                    raise OSError("PHP-FPM closed the connection before the end of the request")
                buf += chunk
            _, kind, _, length, padding = struct.unpack("!BBHHB", buf[:7])
            need = 8 + length + padding
            while len(buf) < need:
                chunk = conn.recv(65536)
                if not chunk:
                    raise OSError("PHP-FPM closed the connection in the middle of a record")
                buf += chunk
            content, buf = buf[8:8 + length], buf[need:]
            if kind == STDOUT:
                out += content
            elif kind == STDERR:
                err += content
            elif kind == END_REQUEST:
                return out, err, struct.unpack("!I", content[:4])[0] if len(content) >= 4 else 0
    finally:
        conn.close()


# The OPcache warm-up of a release: WordPress' bootstrap files and wp-includes without the
# libraries a front-end request does not load, compiled (nothing executed). %s = the release
# directory (a PHP string). (A list of what the source's requests loaded is not to be had:
# opcache_get_status() only shows a pool the scripts inside its open_basedir.)
WARM_OPCACHE_PHP = r"""<?php
$root = %s;
$skip = array('sodium_compat', 'Requests', 'customize', 'SimplePie', 'ID3', 'random_compat', 'IXR',
    'theme-compat', 'Text', 'PHPMailer', 'assets', 'js', 'css', 'images', 'fonts', 'certificates');
$n = 0;
if (function_exists('opcache_compile_file')) {
    foreach (array('index.php', 'wp-load.php', 'wp-blog-header.php', 'wp-settings.php') as $f) {
        $n += @opcache_compile_file("$root/$f") ? 1 : 0;
    }
    $dirs = new RecursiveCallbackFilterIterator(
        new RecursiveDirectoryIterator("$root/wp-includes", FilesystemIterator::SKIP_DOTS),
        function ($file, $key, $it) use ($skip) {
            return !$it->hasChildren() || !in_array($file->getFilename(), $skip, true);
        }
    );
    foreach (new RecursiveIteratorIterator($dirs) as $file) {
        if (substr($file->getFilename(), -4) === '.php') {
            $n += @opcache_compile_file($file->getPathname()) ? 1 : 0;
        }
    }
}
header('Content-Type: text/plain');
echo "\n", $n;
"""


def _php_str(value):
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def warm_opcache(sock_path, release, script_dir, document_root, timeout=20.0):
    """Compiles the WordPress core of `release` (a real path) into the OPcache of the pool on
    `sock_path`: the first request of a new release then does not compile it. The script lies in
    `script_dir` (inside the pool's open_basedir, not served by nginx) for the duration of the
    request. Returns the number of files compiled, None when it did not work (the health check
    judges the site either way)."""
    import os
    import secrets

    script = os.path.join(script_dir, ".pressluft-warm-%s.php" % secrets.token_hex(8))
    try:
        fd = os.open(script, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w") as fh:
            fh.write(WARM_OPCACHE_PHP % _php_str(release))
        out, _, _ = request(sock_path, script, document_root, timeout)
        return int(out.rsplit(b"\n", 1)[-1].strip() or 0)
    except (OSError, ValueError):
        return None
    finally:
        try:
            os.unlink(script)
        except OSError:
            pass
