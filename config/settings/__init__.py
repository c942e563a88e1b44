"""Settings: everything lives in :mod:`config.settings.base`; production differs only by environment."""

from config.settings.base import *  # noqa: F403
