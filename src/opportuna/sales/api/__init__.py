"""The sales API: opportunities and everything in them, client folders and catalogues.

Reads go through the visibility door, writes through the services; these modules only turn
ids into objects and objects into schemas.
"""

from ninja import Router

from opportuna.sales.api import catalogues, clients, collaboration, opportunities, proposals

router = Router()
router.add_router("", opportunities.router)
router.add_router("", collaboration.router)
router.add_router("", proposals.router)
router.add_router("", clients.router)
router.add_router("", catalogues.router)

__all__ = ["router"]
