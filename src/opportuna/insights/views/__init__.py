"""Web views of insights, one module per screen; each module exports `urlpatterns`."""
