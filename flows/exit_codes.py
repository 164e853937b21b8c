"""Exit statuses shared by the ``feedlake`` commands: 0 when the command ran, 2 when it could not."""

from __future__ import annotations

EXIT_OK = 0
EXIT_CANNOT_RUN = 2
