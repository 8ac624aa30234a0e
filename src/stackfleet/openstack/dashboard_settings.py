"""Horizon's local settings: Horizon's settings module star-imports this from
openstack_dashboard/local/local_settings.py, which scripts/install-openstack writes.

django-compressor's offline mode looks every `{% compress %}` block up in a manifest by the hash
of what the block renders to. The install builds that manifest once, so whatever reaches those
blocks (the web root, the static URL, the themes, HORIZON_CONFIG) is fixed here and never depends
on the site. The per-site values (the secret key, Keystone's URL, memcached's address, the router
options) come from STATE/etc/horizon/dashboard.json (configs.horizon_dashboard_json), read at every
start, and never reach a template: a controller on a new address keeps the same manifest.
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import openstack_dashboard

from stackfleet.openstack.services import HORIZON_STATIC

__all__ = [
    "ALLOWED_HOSTS", "CACHES", "COMPRESS_ENABLED", "COMPRESS_OFFLINE", "DEBUG",
    "OPENSTACK_KEYSTONE_URL", "OPENSTACK_NEUTRON_NETWORK", "SECRET_KEY", "SESSION_ENGINE",
    "STATIC_ROOT", "STATIC_URL", "WEBROOT",
]

CONFIG_DIR_ENV = "STACKFLEET_HORIZON_CONFIG_DIR"  # the uWSGI process's, see services.py
RUNTIME_FILE = "dashboard.json"
# VENV/lib/pythonX.Y/site-packages/openstack_dashboard/__init__.py
VENV = Path(openstack_dashboard.__file__).parents[4]

# Fixed: these reach the compressed templates.
DEBUG = False
WEBROOT = "/"
STATIC_URL = "/static/"
STATIC_ROOT = HORIZON_STATIC.format(venv=VENV)
COMPRESS_ENABLED = True
COMPRESS_OFFLINE = True  # a block missing from the manifest is an error page, never a rebuild


def runtime() -> dict[str, object]:
    """The site's values; without a config dir, throwaway ones for the install's collectstatic
    and compress, which render no page that uses them. The install has no memcached, and the
    compressed blocks' `{% cache %}` tags need a cache, so it gets a local-memory one: with an
    unreachable memcached, compress leaves those blocks out of the manifest without failing."""
    config_dir = os.environ.get(CONFIG_DIR_ENV)
    if config_dir is None:
        return {"secret_key": secrets.token_urlsafe(32), "keystone_url": "http://127.0.0.1:5000/v3",
                "memcached": None, "neutron_network": {}}
    loaded: dict[str, object] = json.loads((Path(config_dir) / RUNTIME_FILE).read_text())
    return loaded


_site = runtime()
SECRET_KEY = _site["secret_key"]
OPENSTACK_KEYSTONE_URL = _site["keystone_url"]
# Sessions live in memcached on the controller: a moved controller starts a new memcached, so
# users log in again there (their cookie was for the old address anyway).
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
           if _site["memcached"] is None else
           {"BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
            "LOCATION": _site["memcached"]}}
OPENSTACK_NEUTRON_NETWORK = _site["neutron_network"]
# Reached by whatever address routes here (the controller's, a forwarded port, later the VIP);
# Horizon builds no absolute URL from the Host header.
ALLOWED_HOSTS = ["*"]
