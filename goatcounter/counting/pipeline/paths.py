"""Step: clean up a path or event name."""
from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from goatcounter.counting.pipeline import urls

# Query parameters that only track the visitor and would split one page into many.
_TRACKING = frozenset({
    "fbclid", "ref", "mc_cid", "mc_eid", "gclid", "nsukey", "isappinstalled",
    "__cf_chl_captcha_tk__", "__cf_chl_jschl_tk__", "continueFlag",
    "_x_tr_sl", "_x_tr_hl", "_x_tr_pto", "_x_tr_tl",
})
_OFFLINE_READER = "/storage/emulated/0/Android/data/jonas.tool.saveForOffline/files/"
NO_EVENT_NAME = "(no event name)"


def _is_tracking(key: str, value: str) -> bool:
    if key in _TRACKING or key.startswith("utm_"):
        return True
    return key == "from" and value in ("singlemessage", "groupmessage")


def _from_archive(path: str) -> str:
    """`/web/20200104233523/https://example.com/page` → `/page`."""
    original = urlsplit(path[20:])
    out = original.path or "/"
    query = urls.encode_query(urls.parse_query(original.query))
    return out + ("?" + query if query else "")


@lru_cache(maxsize=16384)
def clean_path(path: str, event: bool) -> str:
    """Trim a path, give it one leading `/` and no trailing one, unwrap archive links and
    drop tracking parameters (re-encoding the rest with sorted keys). Events only lose
    their leading slashes."""
    path = path.strip()
    if event:
        return path.lstrip("/") or NO_EVENT_NAME
    if not path:
        return ""
    path = "/" + path.strip("/")
    if path.startswith(_OFFLINE_READER):
        rest = path[len(_OFFLINE_READER):]
        slash = rest.find("/")
        path = rest[slash:] if slash != -1 else rest
    if path.startswith("/web/20"):
        path = _from_archive(path)
    path = path.rstrip("?&")
    if "?" not in path:
        return path
    base, _, query = path.partition("?")
    query, hash_, fragment = query.partition("#")
    kept = [(k, v) for k, v in urls.parse_query(query) if not _is_tracking(k, v)]
    encoded = urls.encode_query(kept)
    rebuilt = base + ("?" + encoded if encoded else "") + (hash_ + fragment)
    return "/" + rebuilt.strip("/")


def ignored(path: str) -> bool:
    """Paths that are accepted but never counted: proxies' wrappers, broken HTML, and
    the favicon."""
    return (path.startswith("/servlet/redirect.srv/") or "<html>" in path
            or "<HTML>" in path or path == "/favicon.ico")
