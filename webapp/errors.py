"""Error pages and JSON errors, for the whole app in one place: a page for a person, or
{"error": message} under /api/."""
from flask import current_app, jsonify, render_template, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import SecurityError

from .forms import too_many_parts_message
from .limits import TooMuchWork
from .pages import upload_page
from .config import settings_of


def too_large_message():
    """413 comes from two limits: the body's size, and the form's parts (their number, and
    the size of a text field)."""
    settings = settings_of(current_app)
    if (request.content_length or 0) <= settings.max_content_length:
        return too_many_parts_message(settings.max_files)
    return f"The upload is too large; the limit is {settings.max_upload_mb:g} MB."


def register_error_handlers(app):
    def answer(status, title, message, api_message=None):
        if request.path.startswith("/api/"):
            return jsonify({"error": api_message or message}), status
        return render_template("error.html", title=title, message=message), status

    @app.errorhandler(400)
    def bad_request(error):
        if isinstance(error, SecurityError):  # a Host header not in TRUSTED_HOSTS
            return ("This server does not answer to that host name. The administrator can add "
                    "it to SKINLESION_TRUSTED_HOSTS.\n", 400, {"Content-Type": "text/plain; charset=utf-8"})
        return answer(400, "Bad request", error.description)

    @app.errorhandler(403)
    def forbidden(error):
        return answer(403, "Refused", error.description)

    @app.errorhandler(404)
    def not_found(_error):
        return answer(404, "Not found", "There is no page or analysis at this address.", "Not found.")

    @app.errorhandler(405)
    def not_allowed(_error):
        return answer(405, "Not allowed", "This address does not accept that kind of request.",
                      "Method not allowed.")

    @app.errorhandler(413)
    def too_large(_error):
        if request.path.startswith("/api/"):
            return jsonify({"error": too_large_message()}), 413
        return upload_page(too_large_message(), 413)

    @app.errorhandler(TooMuchWork)
    def too_much_work(error):
        if request.endpoint == "pages.analyze":  # the form comes back as it was filled in
            body, status = upload_page(str(error), 429, {k: request.form.get(k, "") for k in ("task", "case", "note")})
        else:
            body, status = answer(429, "Too many requests", str(error))
        response = current_app.make_response((body, status))
        response.headers["Retry-After"] = str(error.retry_after)
        return response

    @app.errorhandler(SQLAlchemyError)
    def database_unavailable(error):
        current_app.logger.error("database error on %s: %s", request.path, error)
        return answer(503, "Unavailable", "The server cannot use its database just now (its disk may be "
                                          "full). Nothing was changed; please try again later and tell "
                                          "the administrator.")

    @app.errorhandler(500)
    def server_error(_error):
        stored = " Nothing was stored." if request.method == "POST" else ""
        return answer(500, "Something went wrong", f"The server could not finish this request.{stored} "
                                                   "Please try again.")

