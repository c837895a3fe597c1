"""Skin lesion analysis web app.

    python app.py                                   # http://127.0.0.1:8083, shipped models
    gunicorn -c gunicorn.conf.py "app:create_app()" # a deployment

Settings come from SKINLESION_* environment variables (see README).
"""
import os

from webapp import create_app, sweep_orphans_at_start

HOST = os.environ.get("SKINLESION_HOST", "127.0.0.1")
PORT = int(os.environ.get("SKINLESION_PORT", "8083"))


def main():
    import sys
    from skinlesion.classify import CalibrationError
    from skinlesion.cards import ModelFileError
    from skinlesion.scale import ScaleError
    from sqlalchemy.exc import DatabaseError
    from webapp import ConfigurationError
    try:
        # The one single-user setting: on loopback, no accounts (webapp/auth.py).
        app = create_app({"WORKSTATION": True, "LISTEN_HOST": HOST})
    except (ModelFileError, CalibrationError, ConfigurationError, ScaleError) as error:
        sys.exit(f"Cannot start: {error}")
    except DatabaseError as error:
        sys.exit(f"Cannot start: the database cannot be opened ({error.orig or error}).")
    sweep_orphans_at_start(app.config, app.extensions["skinlesion"].store)
    print(f"Serving on http://{HOST}:{PORT}  (Ctrl+C to stop)", flush=True)
    app.run(host=HOST, port=PORT, debug=False, threaded=True)


if __name__ == "__main__":
    main()
