"""Web views of integrations; each module exports `urlpatterns`."""
