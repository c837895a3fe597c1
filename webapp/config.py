"""Where the web app keeps its settings: the one Settings (skinlesion/settings.py) that
create_app was given, read by every module through settings_of(app)."""

KEY = "settings"


def keep_settings(app, settings):
    app.extensions[KEY] = settings


def settings_of(app):
    return app.extensions[KEY]
