"""Skin lesion analysis web app.

    python app.py                                   # http://127.0.0.1:8083, shipped models
    gunicorn -c gunicorn.conf.py "app:create_app()" # a deployment

Settings come from SKINLESION_* environment variables (skinlesion/settings.py,
docs/deployment.md).
"""
from webapp import create_app, sweep_orphans_at_start


def main():
    import sys

    from skinlesion.cards import ModelFileError
    from skinlesion.classify import CalibrationError
    from skinlesion.scale import ScaleError
    from skinlesion.settings import Settings, SettingError
    from sqlalchemy.exc import DatabaseError
    from webapp import ConfigurationError
    try:
        # The one single-user setting: on loopback, no accounts (Settings.login_required).
        settings = Settings.from_environment(workstation=True)
        app = create_app(settings)
    except (ModelFileError, CalibrationError, ConfigurationError, ScaleError, SettingError) as error:
        sys.exit(f"Cannot start: {error}")
    except DatabaseError as error:
        sys.exit(f"Cannot start: the database cannot be opened ({error.orig or error}).")
    sweep_orphans_at_start(settings, app.extensions["skinlesion"].store)
    print(f"Serving on http://{settings.host}:{settings.port}  (Ctrl+C to stop)", flush=True)
    app.run(host=settings.host, port=settings.port, debug=False, threaded=True)


if __name__ == "__main__":
    main()
