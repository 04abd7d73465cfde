"""Realistic Apache log lines for benchmarks and tests, deterministic per seed.

    python benchmarks/generate_logs.py --format combined --lines 1000000 OUT
    python benchmarks/generate_logs.py --format error --lines 100000 OUT

Formats: common, combined, vhost_combined (access logs, written as httpd's mod_log_config would
write them, escaping included) and error (httpd 2.4 default ErrorLogFormat lines, with the odd
2.2-style line). Importable: `generate_lines(fmt, count, seed)` yields bytes lines without
newline; `write_log(path, fmt, count, seed)` writes a file.

Realism: IPv4 and IPv6 clients (some repeat, as real clients do), a clock that advances about a
second per few hundred lines in several UTC offsets (one per virtual host), varied methods,
statuses weighted like production traffic, `-` sizes on 304/204/HEAD, query strings (a third of the
request lines one of a kind, as ids and cache busters make them), referers,
user agents including ones with quotes (escaped as `\\"`, the way httpd writes them) and
non-ASCII bytes (written as `\\xhh`), the occasional TLS handshake sent to the plain port.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

__all__ = ["FORMATS", "generate_lines", "write_log"]

FORMATS = ("common", "combined", "vhost_combined", "error")

_METHODS = ["GET"] * 80 + ["POST"] * 12 + ["HEAD"] * 3 + ["PUT", "DELETE", "OPTIONS", "PATCH", "PROPFIND"]
_STATUSES = (
    [200] * 70 + [304] * 8 + [301, 302, 302, 204] + [404] * 6 + [400, 401, 403, 403, 405] + [500, 502, 503]
)
_PATHS = [
    "/", "/index.html", "/favicon.ico", "/robots.txt", "/static/css/site.css", "/static/js/app.min.js",
    "/images/logo.png", "/api/v1/users", "/api/v1/orders/12345", "/search", "/wp-login.php",
    "/blog/2024/03/hello-world/", "/products/widget-3000", "/cart", "/checkout/confirm",
    "/downloads/report.pdf", "/.env", "/server-status", "/a%20b/c",
]  # fmt: skip
# Rare in real traffic (~1% of lines): values httpd had to escape.
_ESCAPED_PATHS = ["/caf\\xc3\\xa9/menu", '/search?q=\\"quoted\\"', "/\\xff\\xfe/raw-bytes"]
_QUERIES = [
    "",
    "",
    "",
    "",
    "?q=apache+logs",
    "?page=2&sort=desc",
    "?id=42",
    "?utm_source=news&utm_medium=email",
]
_REFERERS = [
    "-", "https://www.google.com/", "https://example.com/", "https://example.com/blog/",
    "https://duckduckgo.com/?q=widget", "http://localhost:8080/admin", "android-app://com.google.android.gm/",
    "https://www.example.com/products/widget-3000", "https://shop.example.com/cart?step=2&coupon=SPRING",
    "https://www.example.com/blog/2024/03/hello-world/", "https://www.bing.com/search?q=apache+log+sidecar",
]  # fmt: skip
_BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
]  # fmt: skip
# Browsers make most of a site's traffic (and the long user agents); tools and bots the rest.
_AGENTS = _BROWSERS * 6 + [
    "curl/8.5.0", "python-requests/2.31.0", "Go-http-client/1.1", "-",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
    "ApacheBench/2.3",
]  # fmt: skip
_ESCAPED_AGENTS = [
    'Mozilla/5.0 (compatible; \\"Quoted\\" Crawler/1.0; +https://crawler.example/bot)',
    "Mozilla/5.0 (Linux; Android 14) Caf\\xc3\\xa9Browser/2.0",
]
_VHOSTS = [("www.example.com", 443, UTC), ("shop.example.com", 443, timezone(timedelta(hours=2))),
           ("api.example.org", 8443, timezone(timedelta(hours=-7))), ("legacy.example.net", 80, timezone(timedelta(hours=5, minutes=30)))]  # fmt: skip
_USERS = ["-"] * 20 + ["alice", "bob", "svc-backup"]
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _clients(rng: random.Random, count: int) -> list[str]:
    out = []
    for _ in range(count):
        if rng.random() < 0.2:
            out.append(
                f"2001:db8:{rng.randrange(65536):x}:{rng.randrange(65536):x}::{rng.randrange(1, 65536):x}"
            )
        else:
            out.append(
                f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            )
    out[0] = "::1"
    out[1] = "127.0.0.1"
    return out


def _clf_time(moment: datetime) -> str:
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return (
        f"[{moment.day:02d}/{_MONTHS[moment.month - 1]}/{moment.year:04d}:"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d} {sign}{minutes // 60:02d}{minutes % 60:02d}]"
    )


def _access_line(
    rng: random.Random,
    fmt: str,
    clients: list[str],
    clock: datetime,
    time_cache: dict[tuple[int, datetime], str],
) -> str:
    vhost, port, tz = _VHOSTS[rng.randrange(len(_VHOSTS))]
    key = (port, clock)
    stamp = time_cache.get(key)
    if stamp is None:
        stamp = time_cache[key] = _clf_time(clock.astimezone(tz))
    client = clients[min(int((rng.paretovariate(1.1) - 1) * 40), len(clients) - 1)]
    method = _METHODS[rng.randrange(len(_METHODS))]
    status = _STATUSES[rng.randrange(len(_STATUSES))]
    if rng.random() < 0.002:
        request = "\\x16\\x03\\x01\\x02" if rng.random() < 0.5 else "-"
        status = 400
    else:
        if rng.random() < 0.005:
            path = _ESCAPED_PATHS[rng.randrange(len(_ESCAPED_PATHS))]
        else:
            path = _PATHS[rng.randrange(len(_PATHS))] + _QUERIES[rng.randrange(len(_QUERIES))]
            if rng.random() < 0.3:  # ids, cache busters: about a third of request lines are one of a kind
                path += ("&" if "?" in path else "?") + f"id={rng.randrange(10**9)}"
        protocol = "HTTP/1.1" if rng.random() < 0.85 else ("HTTP/2.0" if rng.random() < 0.7 else "HTTP/1.0")
        request = f"{method} {path} {protocol}"
    size = "-" if status in (204, 304) or method == "HEAD" else str(int(rng.lognormvariate(8, 1.5)))
    user = _USERS[rng.randrange(len(_USERS))]
    line = f'{client} - {user} {stamp} "{request}" {status} {size}'
    if fmt == "common":
        return line
    referer = _REFERERS[rng.randrange(len(_REFERERS))]
    if rng.random() < 0.01:
        agent = _ESCAPED_AGENTS[rng.randrange(len(_ESCAPED_AGENTS))]
    else:
        agent = _AGENTS[rng.randrange(len(_AGENTS))]
    line = f'{line} "{referer}" "{agent}"'
    if fmt == "vhost_combined":
        line = f"{vhost}:{port} {line}"
    return line


_ERROR_MESSAGES = [
    ("core", "error", "AH00126: Invalid URI in request GET /%%%% HTTP/1.1"),
    ("authz_core", "error", "AH01630: client denied by server configuration: /var/www/html/.env"),
    ("ssl", "info", "AH01964: Connection to child 3 established (server www.example.com:443)"),
    ("php7", "error", "PHP Warning:  Undefined variable $x in /var/www/html/index.php on line 12"),
    ("mpm_event", "notice", "AH00489: Apache/2.4.58 (Debian) configured -- resuming normal operations"),
    ("core", "notice", "AH00094: Command line: '/usr/sbin/apache2'"),
    ("proxy_http", "error", "(111)Connection refused: AH01114: HTTP: failed to make connection to backend: 127.0.0.1"),
    ("cgi", "error", "AH01215: stderr from /usr/lib/cgi-bin/test.cgi: \"quoted\" output"),
]  # fmt: skip


def _error_line(rng: random.Random, clients: list[str], clock: datetime) -> str:
    module, level, message = _ERROR_MESSAGES[rng.randrange(len(_ERROR_MESSAGES))]
    moment = clock + timedelta(microseconds=rng.randrange(1_000_000))
    stamp = (
        f"{_DAYS[moment.weekday()]} {_MONTHS[moment.month - 1]} {moment.day:02d} "
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{moment.microsecond:06d} {moment.year}"
    )
    pid = rng.randrange(1000, 40000)
    if rng.random() < 0.03:  # httpd 2.2 style line
        return f"[{stamp[:19]} {moment.year}] [{level}] [client {clients[rng.randrange(len(clients))]}] {message}"
    client = ""
    if module not in ("mpm_event", "core") or rng.random() < 0.3:
        address = clients[rng.randrange(len(clients))]
        host = f"[{address}]" if ":" in address else address
        client = f" [client {host}:{rng.randrange(1024, 65536)}]"
    return f"[{stamp}] [{module}:{level}] [pid {pid}:tid {rng.randrange(10**14, 10**15)}]{client} {message}"


def generate_lines(fmt: str, count: int, seed: int = 1) -> Iterator[bytes]:
    """`count` lines of `fmt` (see FORMATS), UTF-8 encoded, without newlines."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    rng = random.Random(seed)
    clients = _clients(rng, 5000)
    clock = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)
    time_cache: dict[tuple[int, datetime], str] = {}
    for _ in range(count):
        if rng.random() < 0.004:  # ~250 requests per second
            clock += timedelta(seconds=1)
            time_cache.clear()
        if fmt == "error":
            yield _error_line(rng, clients, clock).encode()
        else:
            yield _access_line(rng, fmt, clients, clock, time_cache).encode()


def write_log(path: str | Path, fmt: str, count: int, seed: int = 1) -> Path:
    """Write `count` lines of `fmt` to `path` (newline-terminated); return the path."""
    target = Path(path)
    with target.open("wb") as handle:
        batch: list[bytes] = []
        for line in generate_lines(fmt, count, seed):
            batch.append(line)
            if len(batch) >= 10_000:
                handle.write(b"\n".join(batch) + b"\n")
                batch.clear()
        if batch:
            handle.write(b"\n".join(batch) + b"\n")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--format", choices=FORMATS, default="combined")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("out", help="output file ('-' for stdout)")
    args = parser.parse_args(argv)
    if args.out == "-":
        for line in generate_lines(args.format, args.lines, args.seed):
            sys.stdout.buffer.write(line + b"\n")
    else:
        write_log(args.out, args.format, args.lines, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
