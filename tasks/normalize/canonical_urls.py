"""Canonical article URLs: absolute, lower-case scheme and host, no fragment, no tracking params."""

from __future__ import annotations

from urllib.parse import unquote_plus, urljoin, urlsplit, urlunsplit

# Query parameters that identify a campaign or a click, never the article.
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gclsrc",
        "msclkid",
        "mc_cid",
        "mc_eid",
        "igshid",
        "yclid",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "ocid",
        "cmpid",
        "ncid",
        "sr_share",
        "at_medium",
        "at_campaign",
        "at_custom1",
        "at_custom2",
        "at_custom3",
        "at_custom4",
    }
)
TRACKING_PREFIXES = ("utm_", "__twitter", "_ga", "oly_", "pk_", "mtm_")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_url(raw: str | None, base: str | None = None) -> str | None:
    """Return the canonical absolute http(s) form of ``raw`` resolved against ``base``, or None."""
    if raw is None:
        return None
    text = raw.strip()
    if not text:
        return None
    try:
        if base:
            text = urljoin(base, text)
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    # The host is rebuilt without user:password, so credentials in a URL never reach the lake.
    # Drop tracking parameters by their decoded name; the others keep their exact bytes and order.
    query = "&".join(
        part for part in parts.query.split("&") if not _is_tracking(unquote_plus(part.split("=", 1)[0]))
    )
    return urlunsplit((scheme, host, parts.path or "/", query, ""))


def _is_tracking(key: str) -> bool:
    lowered = key.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES)
