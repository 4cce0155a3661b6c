"""Admin for the sales domain.

Configuration (pipelines, steps, default fields, catalogues, client folders) is edited here,
each save a call to `sales.services` (`config`). Opportunities and what lives in them are
read-only (`opportunities`): the web app changes them through the services, and the event
log is append-only.
"""

from opportuna.sales.admin import config, opportunities

__all__ = ["config", "opportunities"]
