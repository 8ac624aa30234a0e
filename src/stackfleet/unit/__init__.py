"""Unit files: systemd syntax plus fleet's [X-Fleet] scheduling constraints."""
from .errors import UnitError, UnitInvalid
from .model import Constraints
from .names import UnitName, parse_unit_name
from .parser import Entry, Section
from .patterns import glob_matches
from .unitfile import UnitFile, instantiate, load_unit_file, parse_unit
from .verify import check_unit_set, unit_warnings, verify_json, verify_paths

__all__ = [
    "Constraints", "Entry", "Section", "UnitError", "UnitFile", "UnitInvalid", "UnitName",
    "check_unit_set", "glob_matches", "instantiate", "load_unit_file", "parse_unit",
    "parse_unit_name", "unit_warnings", "verify_json", "verify_paths",
]
