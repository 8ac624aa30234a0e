"""The install's check that Horizon's pages render from the offline manifest it just built (runs in
the OpenStack venv, without a site: dashboard_settings' install-time values).

`compress` leaves out, without failing, a block that it cannot render; every page that holds the
block is then a 500. This renders the login page, which holds them all, and exits 1 if it fails.
"""
from __future__ import annotations

import os
import sys
import warnings


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openstack_dashboard.settings")
    import django
    from django.test import Client

    django.setup()
    # Loading every panel warns about Eventlet's and Django's deprecations: noise in the install's log.
    warnings.simplefilter("ignore")
    try:
        status = Client().get("/auth/login/").status_code
    except Exception as exc:  # the test client re-raises the view's error: say which
        print(f"horizon: the login page does not render: {exc!r}"[:2000], file=sys.stderr)
        return 1
    if status != 200:
        print(f"horizon: the login page answers {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
