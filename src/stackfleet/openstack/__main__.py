"""Stand-alone entry: `python -m stackfleet.openstack role run controller` (see cli.py)."""
import sys

from stackfleet.openstack.cli import main

sys.exit(main())
