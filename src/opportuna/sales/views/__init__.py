"""Web views of the sales app, one module per screen; each module exports `urlpatterns`."""
