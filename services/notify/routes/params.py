"""What notify's routes accept in paths and bodies (identifiers, addresses)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import StringConstraints

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$"
PathId = Annotated[str, Path(pattern=ID_PATTERN, max_length=64)]
SiteId = Annotated[str, Path(pattern=ID_PATTERN, max_length=64)]
StaffId = SiteId
RespondentPath = Annotated[str, Path(pattern=r"^p1_[0-9a-f]{32}$")]
Email = Annotated[
    str, StringConstraints(pattern=r"^[^@\s<>,;]{1,64}@[^@\s<>,;]{1,190}\.[^@\s<>,;]{1,63}$")
]
Phone = Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]
