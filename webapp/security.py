"""What keeps other sites out: Host names, cross-origin requests, CSRF tokens, headers.

- Host: only the configured names (TRUSTED_HOSTS, loopback by default) are answered, so a
  DNS-rebinding page cannot read the app under its own name.
- Cross-origin: a state-changing request that a browser marks as coming from another
  site (Sec-Fetch-Site, else Origin) is refused, on pages and on the API alike; tools
  such as curl send neither header and are not affected.
- CSRF: a random token per session, put in each form by `csrf_token()` and checked on
  every state-changing page request.
"""
import hmac
import secrets
from urllib.parse import urlsplit

from flask import abort, request, session

from .config import settings_of

CSRF_FIELD = "csrf_token"
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def csrf_token():
    if CSRF_FIELD not in session:
        session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return session[CSRF_FIELD]


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
CROSS_SITE_MESSAGE = ("Refused: this request came from another web site. Lesion Lens accepts "
                      "changes only from its own pages (or from tools that are not browsers).")


def from_another_site():
    """True when the browser says the request was made by another site's page."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")  # "none": typed or bookmarked
    origin = request.headers.get("Origin")
    if origin is None:
        return False  # not a browser, or an old one: the CSRF token still guards pages
    return origin == "null" or urlsplit(origin).netloc != request.host


def refuse_unknown_host():
    """Read the Host first: werkzeug raises its SecurityError (a 400) for a name not in
    TRUSTED_HOSTS, before the login check or a template tries to build a URL under it."""
    request.host  # noqa: B018 (read for its check)


def refuse_cross_origin():
    if request.method not in SAFE_METHODS and from_another_site():
        abort(403, description=CROSS_SITE_MESSAGE)


def check_csrf():
    if request.method in SAFE_METHODS or request.blueprint == "api":
        return
    expected = session.get(CSRF_FIELD)
    # Read the field without parsing a huge body twice; a 413 is raised here if too large.
    given = request.form.get(CSRF_FIELD, "")
    if not expected or not hmac.compare_digest(expected, given):
        abort(400, description="The form has expired or did not come from this site. "
                               "Please reload the page and try again.")


def add_security_headers(response):
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def init_app(app):
    count = settings_of(app).proxies
    if count:  # the client's address and scheme as the proxy saw them
        from werkzeug.middleware.proxy_fix import ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count)
    app.before_request(refuse_unknown_host)  # first: nothing may build a URL under a forged name
    app.before_request(refuse_cross_origin)  # before credentials are even looked at
    app.after_request(add_security_headers)


def init_csrf(app):
    """After the login check: an anonymous POST is sent to the login page first."""
    app.before_request(check_csrf)
    app.jinja_env.globals["csrf_token"] = csrf_token
