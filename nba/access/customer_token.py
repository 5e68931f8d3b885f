"""Customer tokens: what makes a browser key (one with origins, so public) unable to act for customers
other than the page's own. The shop's server signs the customer id it knows the page is for with the
key's signing secret; the page sends the token with every decide and events request; nba checks that
the token is the key's, unexpired, and names every customer of the request.

    token = <customer_id>.<expires, epoch seconds>.<signature>
    signature = base64url(HMAC-SHA256(signing secret, "<key id>|<customer_id>|<expires>")), no padding

Without this, anyone who copied the key from the page could decide for (and use up the caps of) any
customer id, or report made-up impressions for them."""

from __future__ import annotations

import base64
import hashlib
import hmac

from nba.errors import Forbidden

HEADER = "Nba-Customer-Token"
MAX_LIFETIME = 7 * 86400  # seconds: a token valid longer than a week is refused (leaked ones must lapse)


def signature(signing_secret: str, key_id: str, customer_id: str, expires: int) -> str:
    mac = hmac.new(signing_secret.encode(), f"{key_id}|{customer_id}|{expires}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def sign(signing_secret: str, key_id: str, customer_id: str, expires: int) -> str:
    """A token for `customer_id` until `expires` (epoch seconds): what the shop's server hands its page."""
    return f"{customer_id}.{expires}.{signature(signing_secret, key_id, customer_id, expires)}"


def verify(token: str | None, signing_secret: str, key_id: str, customer_ids: set[str], now: float) -> None:
    """Forbidden unless `token` is valid now for this key and names every customer in `customer_ids`."""
    if not token:
        raise Forbidden(
            f"this browser key needs a customer token: the {HEADER} header signed by your server (docs/access.md)",
            code="customer_token_required",
        )
    head, _, sig = token.rpartition(".")  # customer ids may hold dots; the other two parts cannot
    cid, _, expires_text = head.rpartition(".")
    expires = int(expires_text) if expires_text.isascii() and expires_text.isdigit() and len(expires_text) < 12 else -1
    expected = signature(signing_secret, key_id, cid, expires) if expires >= 0 else ""
    if not hmac.compare_digest(sig.encode(), expected.encode()) or expires < 0:
        raise Forbidden("the customer token is not valid for this key", code="customer_token_invalid")
    if expires <= now:
        raise Forbidden("the customer token has expired; ask your server for a new one", code="customer_token_invalid")
    if expires > now + MAX_LIFETIME:
        raise Forbidden(
            "the customer token is valid for more than 7 days; sign a shorter one", code="customer_token_invalid"
        )
    others = sorted(customer_ids - {cid})
    if others:
        raise Forbidden(
            f"the customer token is for another customer than {', '.join(others)}", code="customer_token_invalid"
        )
