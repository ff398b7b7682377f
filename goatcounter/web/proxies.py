"""Client addresses behind a reverse proxy.

X-Forwarded-For is believed only when the connection comes from a proxy named in
TRUSTED_PROXIES; anybody else could write whatever address they like into it. Of its
items only the last counts: the one the proxy added (nginx appends the address it saw
to whatever the client sent).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse(text: str) -> list[Network]:
    """A comma list of addresses or networks."""
    out: list[Network] = []
    for part in text.split(","):
        part = part.strip()
        if part:
            try:
                out.append(ipaddress.ip_network(part, strict=False))
            except ValueError as exc:
                raise SystemExit(f"GOATCOUNTER_TRUSTED_PROXIES: not an address or network: "
                                 f"{part!r}") from exc
    return out


def _trusted(addr: str, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def last_item(value: str | None) -> str | None:
    """The last item of a comma list that isn't empty, or None. Quotes mean nothing here
    (werkzeug's ProxyFix reads them, and an unbalanced one from a client hid the
    proxy's own item, leaving the request with the proxy's address)."""
    if not value:
        return None
    for item in reversed(value.split(",")):
        item = item.strip()
        if item:
            return item
    return None


class TrustedProxies:
    """WSGI middleware: for requests from a trusted proxy, the client's address and
    scheme from X-Forwarded-For and X-Forwarded-Proto; nothing otherwise."""

    def __init__(self, app: Callable[..., Any], networks: list[Network]) -> None:
        self.app = app
        self.networks = networks
        # Behind a proxy every request comes from one or two addresses: each is parsed
        # and looked up once, not on every pageview.
        self._known: dict[str, bool] = {}

    def trusted(self, addr: str) -> bool:
        """Whether a connection from `addr` comes from a trusted proxy."""
        found = self._known.get(addr)
        if found is None:
            found = _trusted(addr, self.networks)
            if len(self._known) >= 1024:
                self._known.clear()
            self._known[addr] = found
        return found

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self.trusted(environ.get("REMOTE_ADDR", "")):
            addr = last_item(environ.get("HTTP_X_FORWARDED_FOR"))
            if addr:
                environ["REMOTE_ADDR"] = addr
            scheme = last_item(environ.get("HTTP_X_FORWARDED_PROTO"))
            if scheme:
                environ["wsgi.url_scheme"] = scheme
        return self.app(environ, start_response)
