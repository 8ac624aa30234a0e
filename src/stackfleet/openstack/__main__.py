"""Stand-alone entry: `python -m stackfleet.openstack role run controller` (see commands.py)."""
import sys

from stackfleet.openstack.commands import main

sys.exit(main())
