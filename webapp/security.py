"""CSRF tokens for every form and security headers on every response.

CSRF: a random token per session, put in each form by `csrf_token()` and checked on
every state-changing page request. The JSON API takes no cookies for authentication
(HTTP Basic when accounts are on), so a foreign page cannot ride on a session there.
"""
import hmac
import secrets

from flask import abort, request, session

CSRF_FIELD = "csrf_token"
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def csrf_token():
    if CSRF_FIELD not in session:
        session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return session[CSRF_FIELD]


def check_csrf():
    if request.method in ("GET", "HEAD", "OPTIONS") or request.blueprint == "api":
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
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    app.before_request(check_csrf)
    app.after_request(add_security_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
